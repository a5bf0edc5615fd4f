//! The in-process fan-out of video state changes to event streams. The server holds one
//! subscription to the result backend (the [`listener`](super::listener)'s, on `argus:videos`)
//! and hands each change to the streams watching that video, so that an event stream costs no
//! backend connection: a thousand streams are a thousand receivers of an in-memory channel.
//!
//! A video's channel exists while someone watches it; the last [`Watch`] dropped removes it.
//! Each user may hold `ARGUS_MAX_STREAMS_PER_USER` streams at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use argus_common::state::VideoState;
use tokio::sync::broadcast;

/// Changes queued for one slow stream before it is told to re-read the state instead.
const CHANNEL_CAPACITY: usize = 32;

/// What a watcher gets.
#[derive(Clone, Debug)]
pub enum Change {
    /// The video's new state.
    State(Arc<VideoState>),
    /// Changes may have been missed (the backend subscription was re-made, or this watcher
    /// fell behind): read the current state again.
    Resync,
}

/// Why a stream cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("{open} event streams are open for this user already (at most {max})")]
pub struct TooManyStreams {
    pub open: usize,
    pub max: usize,
}

/// Changes queued for one slow stream of every video before it is told to re-read.
const ALL_CHANNEL_CAPACITY: usize = 512;

/// The watchers of every video, and the streams of every user.
pub struct StateHub {
    videos: Mutex<HashMap<String, broadcast::Sender<Change>>>,
    /// Every change, for the streams of every video of a user (the console's list).
    all: broadcast::Sender<Change>,
    users: Mutex<HashMap<String, usize>>,
    max_per_user: usize,
}

impl StateHub {
    pub fn new(max_per_user: usize) -> Arc<StateHub> {
        Arc::new(StateHub {
            videos: Mutex::default(),
            all: broadcast::channel(ALL_CHANNEL_CAPACITY).0,
            users: Mutex::default(),
            max_per_user: max_per_user.max(1),
        })
    }

    /// Starts watching `video_id` for `user_id`, unless that user holds the most streams
    /// allowed already. The watch ends (and its slot frees) when it is dropped.
    pub fn watch(
        self: &Arc<StateHub>,
        user_id: &str,
        video_id: &str,
    ) -> Result<Watch, TooManyStreams> {
        self.take_slot(user_id)?;
        let receiver = self
            .videos
            .lock()
            .expect("not poisoned")
            .entry(video_id.to_string())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe();
        Ok(Watch {
            hub: Arc::clone(self),
            user_id: user_id.to_string(),
            video_id: Some(video_id.to_string()),
            receiver: Some(receiver),
        })
    }

    /// Starts watching every video's changes for `user_id` (who filters them), in one of that
    /// user's stream slots.
    pub fn watch_all(self: &Arc<StateHub>, user_id: &str) -> Result<Watch, TooManyStreams> {
        self.take_slot(user_id)?;
        Ok(Watch {
            hub: Arc::clone(self),
            user_id: user_id.to_string(),
            video_id: None,
            receiver: Some(self.all.subscribe()),
        })
    }

    fn take_slot(&self, user_id: &str) -> Result<(), TooManyStreams> {
        {
            let mut users = self.users.lock().expect("not poisoned");
            let open = users.entry(user_id.to_string()).or_default();
            if *open >= self.max_per_user {
                return Err(TooManyStreams {
                    open: *open,
                    max: self.max_per_user,
                });
            }
            *open += 1;
        }
        Ok(())
    }

    /// Hands `state` to the watchers of its video (none: dropped).
    pub fn publish(&self, state: VideoState) {
        let change = Change::State(Arc::new(state));
        if let Change::State(state) = &change {
            if let Some(tx) = self
                .videos
                .lock()
                .expect("not poisoned")
                .get(&state.video_id)
            {
                let _ = tx.send(change.clone());
            }
        }
        let _ = self.all.send(change);
    }

    /// Tells every watcher to read its video's state again (changes published while the
    /// backend subscription was down reached no one).
    pub fn resync(&self) {
        for tx in self.videos.lock().expect("not poisoned").values() {
            let _ = tx.send(Change::Resync);
        }
        let _ = self.all.send(Change::Resync);
    }

    /// Streams open now (all users).
    pub fn streams(&self) -> usize {
        self.users.lock().expect("not poisoned").values().sum()
    }

    /// Videos watched now.
    pub fn videos(&self) -> usize {
        self.videos.lock().expect("not poisoned").len()
    }
}

/// One stream's view of one video's changes (or of every video's).
pub struct Watch {
    hub: Arc<StateHub>,
    user_id: String,
    /// `None`: every video.
    video_id: Option<String>,
    /// Always `Some` until dropped.
    receiver: Option<broadcast::Receiver<Change>>,
}

impl Watch {
    /// The next change. A watcher that fell behind gets [`Change::Resync`].
    pub async fn recv(&mut self) -> Change {
        let receiver = self.receiver.as_mut().expect("until dropped");
        match receiver.recv().await {
            Ok(change) => change,
            Err(broadcast::error::RecvError::Lagged(_)) => Change::Resync,
            // The hub keeps the sender while this receiver lives: never closed.
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // The receiver goes first, so that the count below no longer includes it.
        drop(self.receiver.take());
        if let Some(video_id) = &self.video_id {
            let mut videos = self.hub.videos.lock().expect("not poisoned");
            if videos
                .get(video_id)
                .is_some_and(|tx| tx.receiver_count() == 0)
            {
                videos.remove(video_id);
            }
        }
        let mut users = self.hub.users.lock().expect("not poisoned");
        if let Some(open) = users.get_mut(&self.user_id) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                users.remove(&self.user_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_common::state::VideoStatus;

    #[tokio::test]
    async fn changes_reach_the_watchers_of_their_video_only() {
        let hub = StateHub::new(4);
        let mut a = hub.watch("u", "a").unwrap();
        let mut b = hub.watch("u", "b").unwrap();
        let mut state = VideoState::queued("a", None);
        state.status = VideoStatus::Splitting;
        hub.publish(state);
        hub.publish(VideoState::queued("nobody-watches", None));
        match a.recv().await {
            Change::State(s) => assert_eq!(s.status, VideoStatus::Splitting),
            other => panic!("{other:?}"),
        }
        hub.resync();
        assert!(matches!(b.recv().await, Change::Resync));
        assert_eq!((hub.streams(), hub.videos()), (2, 2));
    }

    #[tokio::test]
    async fn a_watch_of_every_video_gets_every_change_in_a_slot_of_its_own() {
        let hub = StateHub::new(2);
        let mut all = hub.watch_all("u").unwrap();
        let _one = hub.watch("u", "a").unwrap();
        assert!(hub.watch_all("u").is_err(), "two slots taken");
        hub.publish(VideoState::queued("a", None));
        hub.publish(VideoState::queued("nobody-watches", None));
        for id in ["a", "nobody-watches"] {
            match all.recv().await {
                Change::State(s) => assert_eq!(s.video_id, id),
                other => panic!("{other:?}"),
            }
        }
        hub.resync();
        assert!(matches!(all.recv().await, Change::Resync));
        drop(all);
        assert_eq!((hub.streams(), hub.videos()), (1, 1));
    }

    #[test]
    fn the_last_watch_dropped_frees_everything() {
        let hub = StateHub::new(2);
        let first = hub.watch("u", "v").unwrap();
        let second = hub.watch("u", "v").unwrap();
        let refused = hub.watch("u", "w").err().expect("a third is refused");
        assert_eq!((refused.open, refused.max), (2, 2));
        // Another user has slots of their own.
        let other = hub.watch("x", "v").unwrap();
        drop(first);
        assert_eq!((hub.streams(), hub.videos()), (2, 1));
        let third = hub.watch("u", "w").expect("a slot freed");
        drop((second, other, third));
        assert_eq!((hub.streams(), hub.videos()), (0, 0));
        assert!(hub.users.lock().unwrap().is_empty());
    }
}

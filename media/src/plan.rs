//! Chunk planning from the packet index alone: consecutive frame ranges (presentation order)
//! of about `chunk_size` frames that cover every frame once and only once.
//!
//! No chunk is longer than `chunk_size` (the cap every task is checked against): a boundary
//! goes on the last keyframe of the chunk's second half, so that no decode work is wasted; when
//! there is none (one keyframe only, GOPs longer than half a chunk), the cut falls mid-GOP at
//! `chunk_size` frames and that chunk decodes from the keyframe before it, discarding the
//! frames in between. Planning takes O(n log n) for n frames (two sorts, then a binary search
//! per chunk): half a million frames plan in tens of milliseconds. Each chunk seeks to the last keyframe whose presentation time is at or
//! before its first frame: decoding forward from there reaches every frame of the chunk, open
//! GOPs included (a chunk's last frames may be leading B-frames of the next keyframe; decoding
//! simply continues past it until they come out).

use argus_common::Chunk;

use crate::probe::PacketEntry;

/// Plans the chunks of a video whose packets (decode order, unique timestamps) are `packets`.
pub fn plan_chunks(packets: &[PacketEntry], chunk_size: u64) -> Vec<Chunk> {
    let chunk_size = chunk_size.max(1) as usize;
    let mut pts: Vec<i64> = packets.iter().map(|p| p.pts).collect();
    pts.sort_unstable();
    let n = pts.len();
    // Keyframes by presentation order, with the timestamp to seek to.
    let mut keys: Vec<(usize, i64)> = packets
        .iter()
        .filter(|p| p.key)
        .map(|p| {
            let index = pts
                .binary_search(&p.pts)
                .expect("every packet's pts is in the list");
            (index, p.dts.unwrap_or(p.pts))
        })
        .collect();
    keys.sort_unstable();

    let mut chunks = Vec::new();
    let mut start = 0;
    while start < n {
        let ideal = start.saturating_add(chunk_size);
        let end = if ideal >= n {
            n
        } else {
            // The last keyframe at or before the cap, if it lies in the chunk's second half.
            let at_or_before = keys.partition_point(|&(k, _)| k <= ideal);
            match at_or_before.checked_sub(1).map(|i| keys[i].0) {
                Some(k) if k > start && k >= ideal - chunk_size / 2 => k,
                _ => ideal,
            }
        };
        let seek_dts = if start == 0 {
            None
        } else {
            // The last keyframe at or before the chunk's first frame; none: from the start.
            let at = keys.partition_point(|&(k, _)| k <= start);
            at.checked_sub(1).map(|i| keys[i].1)
        };
        chunks.push(Chunk {
            index: chunks.len() as u32,
            first_frame: start as u64,
            frame_count: (end - start) as u64,
            first_pts: pts[start],
            last_pts: pts[end - 1],
            seek_dts,
        });
        start = end;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packets of `n` frames with a keyframe every `gop` frames, no reordering.
    fn simple(n: i64, gop: i64) -> Vec<PacketEntry> {
        (0..n)
            .map(|i| PacketEntry {
                pts: i * 10,
                dts: Some(i * 10),
                key: i % gop == 0,
            })
            .collect()
    }

    fn assert_covers(chunks: &[Chunk], n: u64) {
        let mut next = 0;
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.index as usize, i);
            assert_eq!(c.first_frame, next, "{chunks:?}");
            assert!(c.frame_count > 0);
            next += c.frame_count;
        }
        assert_eq!(next, n);
    }

    #[test]
    fn cuts_on_keyframes_near_the_target() {
        let chunks = plan_chunks(&simple(100, 12), 25);
        assert_covers(&chunks, 100);
        for c in &chunks[1..] {
            assert_eq!(c.first_frame % 12, 0, "starts on a keyframe: {c:?}");
            assert_eq!(c.seek_dts, Some(c.first_frame as i64 * 10));
        }
        assert_eq!(chunks[0].seek_dts, None);
    }

    #[test]
    fn one_keyframe_cuts_mid_gop_and_seeks_to_it() {
        let chunks = plan_chunks(&simple(50, 1000), 7);
        assert_covers(&chunks, 50);
        assert_eq!(chunks.len(), 8);
        assert!(chunks[1..].iter().all(|c| c.seek_dts == Some(0)));
        assert_eq!((chunks[7].first_pts, chunks[7].last_pts), (490, 490));
    }

    #[test]
    fn reordered_frames_are_planned_in_presentation_order() {
        // Decode order I P B B | I(open) B B P, as x264 writes B-frames.
        let order = [
            (0, true),
            (30, false),
            (10, false),
            (20, false),
            (60, true),
            (40, false),
            (50, false),
            (70, false),
        ];
        let packets: Vec<PacketEntry> = order
            .iter()
            .enumerate()
            .map(|(d, &(pts, key))| PacketEntry {
                pts,
                dts: Some(d as i64 * 10 - 10),
                key,
            })
            .collect();
        let chunks = plan_chunks(&packets, 3);
        assert_covers(&chunks, 8);
        // The second chunk ends with 40 and 50, leading B-frames of the open keyframe at 60:
        // it seeks to the keyframe before and decodes on past 60 to reach them.
        assert_eq!((chunks[1].first_pts, chunks[1].last_pts), (30, 50));
        assert_eq!(chunks[1].seek_dts, Some(-10));
        assert_eq!((chunks[2].first_pts, chunks[2].seek_dts), (60, Some(30)));
    }

    #[test]
    fn no_chunk_exceeds_the_cap_whatever_the_keyframes() {
        // 20,040 frames with a keyframe every 60 at chunk_size 10,000: the nearest keyframe to
        // the first cut is at 10,020, past the cap; the cut goes on 9,960 instead.
        let chunks = plan_chunks(&simple(20_040, 60), 10_000);
        assert_covers(&chunks, 20_040);
        assert!(chunks.iter().all(|c| c.frame_count <= 10_000), "{chunks:?}");
        assert_eq!(chunks[1].first_frame, 9_960);
        for (n, gop, size) in [(1_000, 7, 10), (999, 13, 64), (500, 1, 1), (4_000, 250, 64)] {
            let chunks = plan_chunks(&simple(n, gop), size);
            assert_covers(&chunks, n as u64);
            assert!(
                chunks.iter().all(|c| c.frame_count <= size),
                "{n} {gop} {size}"
            );
        }
    }

    #[test]
    fn all_intra_frames_plan_in_linear_time() {
        // Every frame a keyframe, one frame per chunk: the old plan scanned every keyframe for
        // every chunk (10^10 steps here).
        let packets = simple(100_000, 1);
        let started = std::time::Instant::now();
        let chunks = plan_chunks(&packets, 1);
        let took = started.elapsed();
        assert_covers(&chunks, 100_000);
        assert!(chunks
            .iter()
            .all(|c| c.seek_dts == Some(c.first_pts) || c.index == 0));
        // Generous for an unoptimised build on a loaded machine: the old plan took minutes.
        assert!(took < std::time::Duration::from_secs(2), "{took:?}");
    }

    #[test]
    fn single_frame_and_huge_chunks() {
        assert_covers(&plan_chunks(&simple(1, 1), 25), 1);
        let all = plan_chunks(&simple(30, 5), 1000);
        assert_eq!(all.len(), 1);
        assert_covers(&plan_chunks(&simple(30, 5), 1), 30);
    }
}

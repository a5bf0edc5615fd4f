//! Login throttling, per username and per client address: past a free allowance of failures,
//! each failure blocks further attempts for a back-off that doubles (1 s, 2 s, 4 s, … up to
//! [`MAX_BACKOFF`]); a blocked attempt is answered 429 `too_many_attempts` with `Retry-After`
//! before any password is hashed. A success clears the username's record; the address's record
//! is not cleared by a success (else an attacker with one account of their own could wipe their
//! address's record between guesses) and is forgotten after [`FORGET_AFTER`] without failures.
//!
//! A name is throttled whether or not such a user exists, so a 429 tells nothing about names.
//!
//! The state lives in this process: each API replica throttles on its own (behind a load
//! balancer, N replicas allow up to N times the attempts). Memory is bounded: each table holds
//! at most [`MAX_RECORDS`] records; when full, expired records go first, then the least telling
//! one (fewest failures, then the oldest), so spraying fresh names cannot push an attacked
//! account's record out.
//!
//! The client address is the peer address. `X-Forwarded-For` is read only when the peer is one
//! of `ARGUS_TRUSTED_PROXIES` (an ingress controller, a load balancer): the client is then the
//! right-most address in it that is not a trusted proxy.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use ipnet::IpNet;

use crate::users::USERNAME_MAX;

/// The longest back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A record with no failure for this long is forgotten (its count starts again from zero).
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Records per table (usernames, addresses): ~100 bytes each.
pub const MAX_RECORDS: usize = 10_000;
/// Failures a username is allowed before the back-off starts (`ARGUS_LOGIN_ATTEMPTS`).
pub const DEFAULT_USER_ATTEMPTS: u32 = 5;
/// Failures a client address is allowed before the back-off starts
/// (`ARGUS_LOGIN_ADDRESS_ATTEMPTS`): more than a name's, as many people may share an address.
pub const DEFAULT_ADDRESS_ATTEMPTS: u32 = 20;

#[derive(Clone, Copy, Debug)]
struct Record {
    failures: u32,
    last_failure: Instant,
    blocked_until: Instant,
}

/// The records of one kind of key, bounded.
#[derive(Debug)]
struct Table<K> {
    records: HashMap<K, Record>,
    free_attempts: u32,
    capacity: usize,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(free_attempts: u32, capacity: usize) -> Table<K> {
        Table {
            records: HashMap::new(),
            free_attempts,
            capacity,
        }
    }

    /// How long `key` is still blocked, if it is.
    fn blocked(&self, key: &K, now: Instant) -> Option<Duration> {
        let record = self.records.get(key)?;
        (record.blocked_until > now).then(|| record.blocked_until - now)
    }

    fn failed(&mut self, key: K, now: Instant) {
        if !self.records.contains_key(&key) && self.records.len() >= self.capacity {
            self.make_room(now);
        }
        let record = self.records.entry(key).or_insert(Record {
            failures: 0,
            last_failure: now,
            blocked_until: now,
        });
        if now.duration_since(record.last_failure) > FORGET_AFTER {
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        record.last_failure = now;
        if record.failures >= self.free_attempts {
            let doublings = (record.failures - self.free_attempts).min(16);
            let backoff = Duration::from_secs(1u64 << doublings).min(MAX_BACKOFF);
            record.blocked_until = now + backoff;
        }
    }

    fn forget(&mut self, key: &K) {
        self.records.remove(key);
    }

    /// Drops the expired records, and when none was, the least telling one. O(n), but only
    /// after a failed password check, which costs far more.
    fn make_room(&mut self, now: Instant) {
        self.records
            .retain(|_, r| now.duration_since(r.last_failure) <= FORGET_AFTER);
        if self.records.len() < self.capacity {
            return;
        }
        let least = self
            .records
            .iter()
            .filter(|(_, r)| r.blocked_until <= now)
            .min_by_key(|(_, r)| (r.failures, r.last_failure))
            .or_else(|| {
                self.records
                    .iter()
                    .min_by_key(|(_, r)| (r.failures, r.last_failure))
            })
            .map(|(k, _)| k.clone());
        if let Some(key) = least {
            self.records.remove(&key);
        }
    }
}

/// The throttle of one API process.
#[derive(Debug)]
pub struct LoginThrottle {
    users: Mutex<Table<String>>,
    addresses: Mutex<Table<IpAddr>>,
    trusted_proxies: Vec<IpNet>,
}

impl LoginThrottle {
    pub fn new(user_attempts: u32, address_attempts: u32, trusted_proxies: Vec<IpNet>) -> Self {
        LoginThrottle::with_capacity(
            user_attempts,
            address_attempts,
            trusted_proxies,
            MAX_RECORDS,
        )
    }

    fn with_capacity(
        user_attempts: u32,
        address_attempts: u32,
        trusted_proxies: Vec<IpNet>,
        capacity: usize,
    ) -> Self {
        LoginThrottle {
            users: Mutex::new(Table::new(user_attempts.max(1), capacity)),
            addresses: Mutex::new(Table::new(address_attempts.max(1), capacity)),
            trusted_proxies,
        }
    }

    /// `Err(retry after)` while the name or the address is blocked.
    pub fn check(&self, username: &str, address: Option<IpAddr>) -> Result<(), Duration> {
        self.check_at(username, address, Instant::now())
    }

    /// Records a failed password check.
    pub fn failed(&self, username: &str, address: Option<IpAddr>) {
        self.failed_at(username, address, Instant::now())
    }

    /// Records a success: the name's record is cleared (see the module docs for the address).
    pub fn succeeded(&self, username: &str) {
        lock(&self.users).forget(&user_key(username));
    }

    fn check_at(
        &self,
        username: &str,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Duration> {
        let user = lock(&self.users).blocked(&user_key(username), now);
        let address = address.and_then(|a| lock(&self.addresses).blocked(&address_key(a), now));
        match user.max(address) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    fn failed_at(&self, username: &str, address: Option<IpAddr>, now: Instant) {
        lock(&self.users).failed(user_key(username), now);
        if let Some(address) = address {
            lock(&self.addresses).failed(address_key(address), now);
        }
    }

    /// The client's address: the peer, or behind a trusted proxy what `X-Forwarded-For` says.
    pub fn client_address(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let mut client = peer;
        let hops: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        // Right to left: each trusted hop vouches for the one before it; the first untrusted
        // one is the client. Anything unreadable ends the walk (it may be forged).
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(addr) => {
                    client = addr;
                    if !self.is_trusted(addr) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        Some(client)
    }

    fn is_trusted(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.trusted_proxies.iter().any(|net| net.contains(&addr))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves a table that is still consistent enough to use.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Names longer than any valid username share one record: no such user exists, and the key
/// stays small whatever was sent.
fn user_key(username: &str) -> String {
    username.chars().take(USERNAME_MAX + 1).collect()
}

/// IPv4-mapped addresses as IPv4; an IPv6 client as its /64, which anyone with one address of
/// it has whole.
fn address_key(addr: IpAddr) -> IpAddr {
    match canonical(addr) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// `ARGUS_TRUSTED_PROXIES`: addresses or CIDR blocks (`10.0.0.0/8`, `127.0.0.1`, `fd00::/8`).
pub fn parse_trusted_proxies(list: &[String]) -> Result<Vec<IpNet>, String> {
    list.iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!("ARGUS_TRUSTED_PROXIES: {s:?} is not an IP address or CIDR block")
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "alice";

    fn addr(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn back_off_doubles_is_capped_and_resets_on_success() {
        let throttle = LoginThrottle::new(3, 100, Vec::new());
        let t0 = Instant::now();
        let a = Some(addr("192.0.2.1"));
        for _ in 0..2 {
            throttle.failed_at(ALICE, a, t0);
            assert!(throttle.check_at(ALICE, a, t0).is_ok());
        }
        throttle.failed_at(ALICE, a, t0);
        assert_eq!(throttle.check_at(ALICE, a, t0), Err(Duration::from_secs(1)));
        // Other names are not blocked; the time passes.
        assert!(throttle.check_at("bob", a, t0).is_ok());
        let t1 = t0 + Duration::from_secs(1);
        assert!(throttle.check_at(ALICE, a, t1).is_ok());
        throttle.failed_at(ALICE, a, t1);
        assert_eq!(throttle.check_at(ALICE, a, t1), Err(Duration::from_secs(2)));
        let mut t = t1;
        for _ in 0..20 {
            t += MAX_BACKOFF;
            throttle.failed_at(ALICE, a, t);
        }
        assert_eq!(throttle.check_at(ALICE, a, t), Err(MAX_BACKOFF));
        throttle.succeeded(ALICE);
        assert!(throttle.check_at(ALICE, a, t).is_ok());
        // Forgotten after a quiet hour: the allowance is whole again.
        throttle.failed_at(ALICE, a, t);
        let later = t + FORGET_AFTER + Duration::from_secs(1);
        throttle.failed_at(ALICE, a, later);
        assert!(throttle.check_at(ALICE, a, later).is_ok());
    }

    #[test]
    fn addresses_are_throttled_across_names() {
        let throttle = LoginThrottle::new(100, 3, Vec::new());
        let t0 = Instant::now();
        let a = Some(addr("2001:db8::1"));
        for i in 0..3 {
            throttle.failed_at(&format!("user{i}"), a, t0);
        }
        // The same /64.
        assert!(throttle
            .check_at("someone", Some(addr("2001:db8::ffff")), t0)
            .is_err());
        assert!(throttle
            .check_at("someone", Some(addr("2001:db8:0:1::1")), t0)
            .is_ok());
        // A success does not clear an address.
        throttle.succeeded("user0");
        assert!(throttle.check_at("someone", a, t0).is_err());
        assert_eq!(address_key(addr("::ffff:192.0.2.9")), addr("192.0.2.9"));
    }

    #[test]
    fn tables_stay_bounded_and_keep_what_matters() {
        let throttle = LoginThrottle::with_capacity(3, 3, Vec::new(), 50);
        let t0 = Instant::now();
        for _ in 0..5 {
            throttle.failed_at("victim", None, t0);
        }
        for i in 0..10_000 {
            throttle.failed_at(&format!("spray{i}"), Some(addr("192.0.2.1")), t0);
        }
        assert_eq!(lock(&throttle.users).records.len(), 50);
        assert!(throttle.check_at("victim", None, t0).is_err(), "kept");
        assert_eq!(user_key(&"x".repeat(10_000)).len(), USERNAME_MAX + 1);
    }

    #[test]
    fn proxies_parse() {
        let nets =
            parse_trusted_proxies(&["10.0.0.0/8".into(), " 127.0.0.1".into(), "".into()]).unwrap();
        assert_eq!(nets.len(), 2);
        assert!(nets[1].contains(&addr("127.0.0.1")));
        assert!(!nets[1].contains(&addr("127.0.0.2")));
        assert!(parse_trusted_proxies(&["example.com".into()]).is_err());
    }
}

//! Redis and RabbitMQ for the tests: each test starts its own Redis or
//! RabbitMQ on free loopback ports, with its data in a temporary directory, and stops it on drop.
//! The binaries come from Debian's redis-server and rabbitmq-server (scripts/setup.sh).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "argus-{tag}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < timeout,
            "{what} did not start within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A redis-server of this test's own.
pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let port = free_port();
        let child = Self::spawn(port);
        RedisServer { child, port }
    }

    /// Stops the server and starts a fresh one on the same port: as a Redis without
    /// persistence comes back from a restart, with nothing in it.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(self.port);
    }

    fn spawn(port: u16) -> Child {
        let dir = scratch("redis");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--dir"])
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (run scripts/setup.sh)");
        wait_for("redis-server", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        child
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's /usr/sbin wrappers switch to the rabbitmq user, who cannot write the test's temp
/// directory and has another Erlang cookie: call the real scripts directly.
fn rabbit_bin(name: &str) -> String {
    let direct = format!("/usr/lib/rabbitmq/bin/{name}");
    if std::path::Path::new(&direct).exists() {
        direct
    } else {
        name.to_string()
    }
}

/// A RabbitMQ node of this test's own (takes a few seconds to start).
pub struct RabbitServer {
    pub port: u16,
    node: String,
    cookie: String,
    env: Vec<(String, String)>,
}

impl RabbitServer {
    pub fn start() -> RabbitServer {
        let port = free_port();
        let dir = scratch("rabbit");
        let node = format!("argus{port}@localhost");
        // Server and CLI must share an Erlang cookie. Left to themselves both create
        // ~/.erlang.cookie when it is missing (a race on a fresh machine), and Debian's scripts
        // choose their own HOME: hand both the same one explicitly.
        let cookie = uuid::Uuid::new_v4().simple().to_string();
        let env = vec![
            (
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS".to_string(),
                format!("-setcookie {cookie}"),
            ),
            ("RABBITMQ_NODENAME".to_string(), node.clone()),
            ("RABBITMQ_NODE_PORT".to_string(), port.to_string()),
            (
                "RABBITMQ_NODE_IP_ADDRESS".to_string(),
                "127.0.0.1".to_string(),
            ),
            ("RABBITMQ_DIST_PORT".to_string(), free_port().to_string()),
            (
                "RABBITMQ_MNESIA_BASE".to_string(),
                dir.join("mnesia").display().to_string(),
            ),
            (
                "RABBITMQ_LOG_BASE".to_string(),
                dir.join("log").display().to_string(),
            ),
            (
                "RABBITMQ_ENABLED_PLUGINS_FILE".to_string(),
                dir.join("plugins").display().to_string(),
            ),
            (
                "RABBITMQ_PID_FILE".to_string(),
                dir.join("pid").display().to_string(),
            ),
        ];
        std::fs::write(dir.join("plugins"), "[].").expect("plugins file");
        let server = RabbitServer {
            port,
            node,
            cookie,
            env,
        };
        server.run(&rabbit_bin("rabbitmq-server"), &["-detached"]);
        server.await_startup();
        server
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn run(&self, program: &str, args: &[&str]) -> bool {
        let cli = program.ends_with("rabbitmqctl");
        Command::new(program)
            .args(if cli {
                vec!["--erlang-cookie", &self.cookie]
            } else {
                vec![]
            })
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn await_startup(&self) {
        wait_for("rabbitmq", Duration::from_secs(60), || {
            self.run(
                "rabbitmqctl",
                &["-n", &self.node, "await_startup", "--timeout", "5"],
            )
        });
    }

    /// RabbitMQ's own global message counters (`rabbit_global_counters:overview()`), summed
    /// over protocols: e.g. `messages_routed_total`, `messages_delivered_total`,
    /// `messages_acknowledged_total`, `messages_received_total` (publishes).
    pub fn counters(&self) -> std::collections::BTreeMap<String, u64> {
        let out = Command::new(rabbit_bin("rabbitmqctl"))
            .args(["--erlang-cookie", &self.cookie, "-n", &self.node, "eval"])
            .arg("rabbit_global_counters:overview().")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("rabbitmqctl");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut counters = std::collections::BTreeMap::new();
        // `#{[{protocol,amqp091}] => #{messages_routed_total => 12, …}, …}`
        for pair in text.split([',', '{', '}', '#', '\n']) {
            if let Some((name, value)) = pair.split_once("=>") {
                if let Ok(value) = value.trim().parse::<u64>() {
                    *counters.entry(name.trim().to_string()).or_insert(0) += value;
                }
            }
        }
        counters
    }

    /// Stops and starts the broker application (connections drop, durable queues stay).
    pub fn restart(&self) {
        assert!(self.run(&rabbit_bin("rabbitmqctl"), &["-n", &self.node, "stop_app"]));
        assert!(self.run(&rabbit_bin("rabbitmqctl"), &["-n", &self.node, "start_app"]));
        self.await_startup();
    }
}

impl Drop for RabbitServer {
    fn drop(&mut self) {
        self.run(&rabbit_bin("rabbitmqctl"), &["-n", &self.node, "stop"]);
    }
}

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
    /// Its TLS arguments, when it listens with TLS only.
    tls: Vec<String>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let port = free_port();
        let child = Self::spawn(port, &[]);
        RedisServer {
            child,
            port,
            tls: Vec::new(),
        }
    }

    /// A server that speaks TLS only (`rediss://`), with `certs`' server certificate; with
    /// `client_certs`, it refuses clients without a certificate signed by `certs`' CA.
    pub fn start_tls(certs: &crate::TestCerts, client_certs: bool) -> RedisServer {
        let port = free_port();
        let path = |p: &std::path::Path| p.display().to_string();
        let tls = vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            path(&certs.server_cert),
            "--tls-key-file".into(),
            path(&certs.server_key),
            "--tls-ca-cert-file".into(),
            path(&certs.ca),
            "--tls-auth-clients".into(),
            (if client_certs { "yes" } else { "no" }).into(),
        ];
        let child = Self::spawn(port, &tls);
        RedisServer { child, port, tls }
    }

    /// Stops the server and starts a fresh one on the same port: as a Redis without
    /// persistence comes back from a restart, with nothing in it.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(self.port, &self.tls);
    }

    fn spawn(port: u16, tls: &[String]) -> Child {
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
            .args(tls) // later arguments win: `--port 0` leaves TLS the only listener
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (run scripts/setup.sh)");
        wait_for("redis-server", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        child
    }

    /// `redis://…`, or `rediss://…` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_empty() {
            "redis"
        } else {
            "rediss"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
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
    /// Its TLS listener (`amqps://`), when it has one.
    pub tls_port: Option<u16>,
    node: String,
    cookie: String,
    env: Vec<(String, String)>,
}

impl RabbitServer {
    pub fn start() -> RabbitServer {
        Self::start_with(None)
    }

    /// A node with a TLS listener beside its plain one, with `certs`' server certificate,
    /// that refuses TLS clients without a certificate signed by `certs`' CA.
    pub fn start_tls(certs: &crate::TestCerts) -> RabbitServer {
        Self::start_with(Some(certs))
    }

    fn start_with(certs: Option<&crate::TestCerts>) -> RabbitServer {
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
        let mut env = env;
        let tls_port = certs.map(|certs| {
            let tls_port = free_port();
            let config = dir.join("rabbitmq.conf");
            std::fs::write(
                &config,
                format!(
                    "listeners.ssl.1 = 127.0.0.1:{tls_port}\n\
                     ssl_options.cacertfile = {}\n\
                     ssl_options.certfile = {}\n\
                     ssl_options.keyfile = {}\n\
                     ssl_options.verify = verify_peer\n\
                     ssl_options.fail_if_no_peer_cert = true\n",
                    certs.ca.display(),
                    certs.server_cert.display(),
                    certs.server_key.display()
                ),
            )
            .expect("rabbitmq.conf");
            env.push((
                "RABBITMQ_CONFIG_FILE".to_string(),
                config.display().to_string(),
            ));
            tls_port
        });
        let server = RabbitServer {
            port,
            tls_port,
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

    /// `amqps://…` on the TLS listener (a node started with [`RabbitServer::start_tls`]).
    pub fn tls_url(&self) -> String {
        let port = self.tls_port.expect("a node started with start_tls");
        format!("amqps://guest:guest@127.0.0.1:{port}/%2f")
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

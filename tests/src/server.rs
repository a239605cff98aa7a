//! [`TestServer`]: the real `converger` binary, started on port 0 and read
//! until its ready line. Its stderr is collected continuously (so the pipe
//! never fills and blocks the server) and shown when start-up fails. Several
//! servers may share one PostgreSQL schema (the nodes of a
//! [`TestCluster`](crate::cluster::TestCluster)): the schema is dropped with
//! the last of them.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

use crate::bin::converger_command;
use crate::http::{self, Reply};
use crate::pg::PgSchema;

/// Admin token every test server is started with, unless the test passes its own `--admin-token`.
pub const ADMIN_TOKEN: &str = "test-admin-token";
/// JWT secret every test server is started with.
pub const JWT_SECRET: &str = "test-jwt-secret";
/// How long a server may take to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a server did not become ready.
#[derive(Debug)]
pub struct StartError {
    pub message: String,
    pub status: Option<ExitStatus>,
    pub stderr: String,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (exit: {:?})\n--- server stderr ---\n{}", self.message, self.status, self.stderr)
    }
}

pub struct TestServer {
    child: Option<Child>,
    http: SocketAddr,
    binary: SocketAddr,
    ready_line: String,
    stderr: Arc<Mutex<String>>,
    args: Vec<String>,
    /// The harness's admin token and JWT secret are passed (false: a first run).
    defaults: bool,
    _data: DataDir,
    /// Dropped after the server is killed (`Drop` kills it first), and only
    /// by the last server holding it.
    _schema: Option<Arc<PgSchema>>,
}

impl TestServer {
    /// A server on embedded storage in a fresh temp dir.
    pub fn embedded() -> TestServer {
        Self::start(&[], None).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A server on PostgreSQL in a fresh schema; `None` when `DATABASE_URL` is
    /// unset (a notice is printed), unless `CONVERGER_REQUIRE_PG=1`.
    pub fn postgres() -> Option<TestServer> {
        let schema = PgSchema::create()?;
        Some(Self::start(&[], Some(schema)).unwrap_or_else(|e| panic!("{e}")))
    }

    /// A server on a schema other servers use too (one node of a cluster),
    /// with the harness's admin token and JWT secret, which every node then shares.
    pub fn start_shared(extra_args: &[&str], schema: Arc<PgSchema>) -> Result<TestServer, StartError> {
        Self::start_on(extra_args, Some(schema), true)
    }

    /// An embedded server with extra command-line arguments.
    pub fn embedded_with(args: &[&str]) -> TestServer {
        Self::start(args, None).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the binary and waits for its ready line.
    pub fn start(extra_args: &[&str], schema: Option<PgSchema>) -> Result<TestServer, StartError> {
        Self::start_on(extra_args, schema.map(Arc::new), true)
    }

    /// An embedded server as a newcomer starts it: no admin token and no JWT
    /// secret given (the server makes and keeps its own).
    pub fn first_run(args: &[&str]) -> TestServer {
        Self::start_on(args, None, false).unwrap_or_else(|e| panic!("{e}"))
    }

    /// An embedded server on the data directory `dir`, which the caller made
    /// (and cleans up): e.g. a small file system mounted for the test.
    pub fn embedded_in(dir: &Path, extra_args: &[&str]) -> Result<TestServer, StartError> {
        Self::start_in(DataDir::Given(dir.to_path_buf()), extra_args, None, true)
    }

    fn start_on(extra_args: &[&str], schema: Option<Arc<PgSchema>>, defaults: bool) -> Result<TestServer, StartError> {
        let data = DataDir::Temp(tempfile::tempdir().expect("temp data dir"));
        Self::start_in(data, extra_args, schema, defaults)
    }

    fn start_in(
        data: DataDir,
        extra_args: &[&str],
        schema: Option<Arc<PgSchema>>,
        defaults: bool,
    ) -> Result<TestServer, StartError> {
        let args: Vec<String> = extra_args.iter().map(|a| a.to_string()).collect();
        let run = launch(data.path(), schema.as_deref(), &args, defaults)?;
        Ok(TestServer {
            child: Some(run.child),
            http: run.http,
            binary: run.binary,
            ready_line: run.line,
            stderr: run.stderr,
            args,
            defaults,
            _data: data,
            _schema: schema,
        })
    }

    /// `kill -9`, then a new server on the same data (directory or schema) with
    /// the same arguments, on new ports. What the first one acknowledged must be
    /// there.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.restart().unwrap_or_else(|e| panic!("{e}"));
    }

    /// `kill -9`: no shutdown path runs. The addresses stay those of the dead
    /// process (requests to them fail) until [`restart`](Self::restart).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A new process on the same data (directory or schema) with the same
    /// arguments, on new ports; a running one is killed first.
    pub fn restart(&mut self) -> Result<(), StartError> {
        self.kill();
        let run = launch(self._data.path(), self._schema.as_deref(), &self.args, self.defaults)?;
        self.child = Some(run.child);
        self.http = run.http;
        self.binary = run.binary;
        self.ready_line = run.line;
        self.stderr = run.stderr;
        Ok(())
    }

    /// The storage backend the server was started on: `"postgres"` with a
    /// schema of its own, else `"embedded"`.
    pub fn backend(&self) -> &'static str {
        if self._schema.is_some() {
            "postgres"
        } else {
            "embedded"
        }
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    pub fn binary_addr(&self) -> SocketAddr {
        self.binary
    }

    pub fn ready_line(&self) -> &str {
        &self.ready_line
    }

    /// The server's data directory (embedded storage, kept secrets).
    pub fn data_dir(&self) -> &Path {
        self._data.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// `GET path` on a fresh connection.
    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], b"")
    }

    /// Any request on a fresh connection; panics (with the server's stderr) on I/O errors.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        http::request(self.http, method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n--- server stderr ---\n{}", self.stderr()))
    }

    /// Sends `signal` (a name `kill` knows, e.g. `HUP`) to the server.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().to_string();
        let sent = std::process::Command::new("kill").args([&format!("-{signal}"), &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "could not send SIG{signal} to {pid}");
    }

    /// Waits until the server's stderr holds `needle` `count` times (a log
    /// line that marks an event, such as a reload); false after `timeout`.
    pub fn wait_for_log(&self, needle: &str, count: usize, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if self.stderr().matches(needle).count() >= count {
                return true;
            }
            // stderr is collected by a thread: look again shortly.
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let pid = child.id().to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "could not send SIGTERM to {pid}");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let status = child.wait();
            let _ = tx.send((status, child));
        });
        match rx.recv_timeout(timeout) {
            Ok((status, _)) => status.ok(),
            Err(_) => {
                // Still running: kill it by pid so it does not outlive the test.
                let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
                None
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Where a server keeps its data: a temp dir of its own, or one the test gave.
enum DataDir {
    Temp(TempDir),
    Given(std::path::PathBuf),
}

impl DataDir {
    fn path(&self) -> &Path {
        match self {
            DataDir::Temp(t) => t.path(),
            DataDir::Given(p) => p,
        }
    }
}

/// A started child and what its ready line said.
struct Launched {
    child: Child,
    http: SocketAddr,
    binary: SocketAddr,
    line: String,
    stderr: Arc<Mutex<String>>,
}

fn launch(
    data: &Path,
    schema: Option<&PgSchema>,
    extra_args: &[String],
    defaults: bool,
) -> Result<Launched, StartError> {
    let mut cmd = converger_command();
    // The default admin token, unless the test brings its own (an empty one disables the admin API).
    if defaults && !extra_args.iter().any(|a| a == "--admin-token") {
        cmd.args(["--admin-token", ADMIN_TOKEN]);
    }
    if defaults {
        cmd.args(["--jwt-secret", JWT_SECRET]);
    }
    cmd.args(["--http-addr", "127.0.0.1:0", "--binary-addr", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data)
        .args(["--shards", "2"])
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(schema) = schema {
        cmd.env("DATABASE_URL", &schema.url);
    }
    // Test receivers listen on loopback; a test may still pass `--delivery-allow-private false`.
    cmd.env("CONVERGER_DELIVERY_ALLOW_PRIVATE", "true");
    // Every test connects from one address: the per-address limits would
    // count the whole suite as one client. Tests of those limits pass flags,
    // which win over the environment.
    for (var, value) in [
        ("CONVERGER_IP_REQUESTS_PER_SECOND", "1000000"),
        ("CONVERGER_IP_CONNECTIONS_PER_SECOND", "1000000"),
        ("CONVERGER_MAX_CONNECTIONS_PER_IP", "1000000"),
    ] {
        cmd.env(var, value);
    }
    let mut child = cmd.spawn().expect("spawn the converger binary");
    let stderr = Arc::new(Mutex::new(String::new()));
    let collector = collect(child.stderr.take().expect("stderr pipe"), stderr.clone());
    let lines = stdout_lines(child.stdout.take().expect("stdout pipe"));
    let fail = |child: &mut Child, message: String| {
        let _ = child.kill();
        let status = child.wait().ok();
        // The child is gone, so its stderr reaches EOF: wait for the last bytes.
        let _ = collector.join();
        let stderr = stderr.lock().map(|s| s.clone()).unwrap_or_default();
        StartError { message, status, stderr }
    };
    let line = match lines.recv_timeout(READY_TIMEOUT) {
        Ok(line) => line,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            return Err(fail(&mut child, format!("no ready line within {READY_TIMEOUT:?}")))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            return Err(fail(&mut child, "server exited before its ready line".into()))
        }
    };
    let Some((http, binary)) = parse_ready_line(&line) else {
        return Err(fail(&mut child, format!("unexpected first stdout line: {line:?}")));
    };
    Ok(Launched { child, http, binary, line, stderr })
}

/// `converger listening http=ADDR binary=ADDR` → the two addresses.
pub fn parse_ready_line(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.strip_prefix("converger listening http=")?;
    let (http, binary) = rest.split_once(" binary=")?;
    Some((http.parse().ok()?, binary.trim_end().parse().ok()?))
}

/// Copies everything `pipe` yields into `into` until EOF (on a thread, so
/// the writer never blocks on a full pipe).
pub(crate) fn collect(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            if let Ok(mut s) = into.lock() {
                s.push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        }
    })
}

fn stdout_lines(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

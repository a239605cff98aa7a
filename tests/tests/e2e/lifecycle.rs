//! Process lifecycle: graceful exit on SIGTERM, and the epoll driver.

use std::time::{Duration, Instant};

use converger_e2e::{Conn, TestServer};

#[test]
fn sigterm_exits_0_promptly_even_with_an_idle_keep_alive_connection() {
    let mut server = TestServer::embedded();
    let mut idle = Conn::open(server.http_addr()).expect("connect");
    idle.send_request("GET", "/health", &[], b"").expect("send");
    assert_eq!(idle.read_reply(false).expect("reply").status, 200);
    let started = Instant::now();
    let status = server.terminate(Duration::from_secs(5)).expect("exited within 5 s");
    assert!(status.success(), "exit status {status}\n{}", server.stderr());
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(idle.is_closed_by_server(), "idle keep-alive connection closed");
    // The log reaches us through a reader thread, which may trail the exit.
    for step in ["shutting down", "stopped accepting", "all shards stopped", "storage closed"] {
        assert!(server.wait_for_log(step, 1, Duration::from_secs(2)), "no {step:?} in the log:\n{}", server.stderr());
    }
}

#[test]
fn io_driver_epoll_starts_and_serves() {
    let server = TestServer::embedded_with(&["--io-driver", "epoll"]);
    assert_eq!(server.get("/health/ready").status, 200);
    // The log reaches us through a reader thread: give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !server.stderr().contains("\"epoll\"") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(server.stderr().contains("\"epoll\""), "drivers logged:\n{}", server.stderr());
}

#[test]
fn io_driver_io_uring_or_auto_starts_and_serves() {
    // io_uring is allowed on the project's machines; auto must work anywhere.
    let server = TestServer::embedded_with(&["--io-driver", "auto"]);
    assert_eq!(server.get("/health").status, 200);
}

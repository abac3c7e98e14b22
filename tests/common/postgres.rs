//! A throwaway PostgreSQL cluster per test: initdb into a temporary directory (as the `postgres`
//! user when the tests run as root), 127.0.0.1 and a free port, fsync off; stopped and removed
//! when dropped. Server binaries: `$PG_BIN` (scripts/install-postgres.sh), else Debian's.

use super::{free_port, temp_dir, wait_until};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub fn pg_bin() -> PathBuf {
    if let Ok(p) = std::env::var("PG_BIN") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from("/usr/lib/postgresql");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.pop()
        .unwrap_or_else(|| panic!("no PostgreSQL under {root:?} (scripts/install-postgres.sh)"))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a server binary, as `postgres` when we are root (initdb refuses root).
fn run(tool: &str, args: &[&str]) -> std::process::Output {
    let bin = pg_bin().join(tool);
    let out = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&bin)
            .args(args)
            .output()
    } else {
        Command::new(&bin).args(args).output()
    };
    out.unwrap_or_else(|e| panic!("{}: {e}", bin.display()))
}

/// A new cluster in `data` (superuser `postgres`, trust on 127.0.0.1).
fn initdb(data: &std::path::Path) {
    let out = run(
        "initdb",
        &[
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ],
    );
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Postgres {
    pub port: u16,
    pub dir: PathBuf,
    running: bool,
    /// More server options (`-c ssl=on ...`).
    extra: String,
}

impl Postgres {
    pub fn start() -> Postgres {
        Postgres::start_with("", |_| {})
    }

    /// A cluster prepared by `prepare(dir)` (files the server reads, owned by it) and started
    /// with the server options `extra`.
    pub fn start_with(extra: &str, prepare: impl FnOnce(&std::path::Path)) -> Postgres {
        let dir = temp_dir("pg");
        if is_root() {
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(st.success());
        }
        let data = dir.join("data");
        initdb(&data);
        prepare(&dir);
        if is_root() {
            let _ = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status();
        }
        let mut pg = Postgres {
            port: free_port(),
            dir,
            running: false,
            extra: extra.to_string(),
        };
        pg.up();
        pg
    }

    /// Starts the server (again) on its port and data directory.
    pub fn up(&mut self) {
        let data = self.dir.join("data");
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off {}",
            self.port,
            self.dir.display(),
            self.extra
        );
        let log = self.dir.join("pg.log");
        let out = run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-o",
                &opts,
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        assert!(wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        }));
        self.running = true;
    }

    /// The server back as a fresh cluster (its state lost, as after a disk replaced): stopped,
    /// its data directory made anew by initdb, started on the same port.
    pub fn recreate(&mut self) {
        if self.running {
            self.stop();
        }
        let data = self.dir.join("data");
        std::fs::remove_dir_all(&data).expect("remove the data directory");
        initdb(&data);
        self.up();
    }

    /// `pg_ctl stop -m fast`: sessions are ended, the server shuts down cleanly.
    pub fn stop(&mut self) {
        let data = self.dir.join("data");
        let _ = run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
        self.running = false;
    }

    pub fn dsn(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.dsn(), postgres::NoTls)
            .expect("connect to the test cluster")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            self.stop();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

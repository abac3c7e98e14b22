//! A real Kafka-protocol broker (tansu, installed by scripts/install-tansu.sh) per test, on
//! 127.0.0.1 and a free port, and a consumer that reads every record of a topic back.

use super::{free_port, temp_dir};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tansu binary: `$TANSU_BIN`, else the repository cache (installed on demand).
pub fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = root.join(".cache/tansu/bin/tansu");
    if !bin.exists() {
        let st = Command::new(root.join("scripts/install-tansu.sh"))
            .stdout(Stdio::null())
            .status()
            .expect("run scripts/install-tansu.sh");
        assert!(st.success(), "scripts/install-tansu.sh failed");
    }
    bin
}

/// A running broker; killed on drop.
pub struct Broker {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_on(free_port())
    }

    /// A fresh broker (empty memory storage) on `port`: a cluster replaced under the same address.
    pub fn start_on(port: u16) -> Broker {
        let dir = temp_dir("tansu");
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("tansu.out")).unwrap())
            .stderr(std::fs::File::create(dir.join("tansu.err")).unwrap())
            .spawn()
            .expect("start tansu");
        let b = Broker { child, port, dir };
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "tansu did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        b
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates a topic with `partitions` partitions (the cargo-built tansu does not auto-create).
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(tansu_bin())
            .args([
                "topic",
                "create",
                "--broker",
                &format!("tcp://127.0.0.1:{}", self.port),
            ])
            .args(["--partitions", &partitions.to_string(), name])
            .output()
            .expect("tansu topic create");
        assert!(
            out.status.success(),
            "create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Kills the broker: everything it stored is gone with it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP: the broker process is stopped (keeps its in-memory data).
    pub fn pause(&self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGSTOP) };
    }

    /// SIGCONT: the broker runs again.
    pub fn resume(&self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGCONT) };
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Reads every record of `topic` (all `partitions`) from the beginning until `expected` have arrived
/// or nothing new came for `idle`; returns `(key, payload)` per record, partition by partition in
/// offset order.
pub fn consume_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
    idle: Duration,
) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    consume_with_headers(bootstrap, topic, partitions, expected, idle, None)
        .into_iter()
        .map(|r| (r.key, r.payload))
        .collect()
}

/// One consumed record.
pub struct Consumed {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// As [`consume_all`], with each record's partition and headers; reading also ends after
/// `limit` in all (`None`: no limit), for a topic that never goes quiet.
pub fn consume_with_headers(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
    idle: Duration,
    limit: Option<Duration>,
) -> Vec<Consumed> {
    use rdkafka::message::Headers;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            format!("mdc-test-{}", mdc::clock::realtime_ns()),
        )
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut by_partition: Vec<Vec<(i64, Consumed)>> = (0..partitions).map(|_| Vec::new()).collect();
    let mut n = 0;
    let mut last = Instant::now();
    let start = Instant::now();
    while n < expected && last.elapsed() < idle && limit.is_none_or(|l| start.elapsed() < l) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| (x.key.to_string(), x.value.unwrap_or(&[]).to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                by_partition[m.partition() as usize].push((
                    m.offset(),
                    Consumed {
                        partition: m.partition(),
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().unwrap_or_default().to_vec(),
                        headers,
                    },
                ));
                n += 1;
                last = Instant::now();
            }
            Some(Err(e)) => panic!("consume {topic}: {e}"),
            None => {}
        }
    }
    by_partition
        .into_iter()
        .flat_map(|mut v| {
            v.sort_by_key(|(o, _)| *o);
            v.into_iter().map(|(_, c)| c)
        })
        .collect()
}

/// Produces one record (`payload`, no key) to `topic` and waits for its acknowledgement.
#[allow(dead_code)]
pub fn produce_one(bootstrap: &str, topic: &str, payload: &[u8]) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer");
    p.send(BaseRecord::<(), [u8]>::to(topic).payload(payload))
        .map_err(|(e, _)| e)
        .expect("send");
    p.flush(Duration::from_secs(10)).expect("flush");
}

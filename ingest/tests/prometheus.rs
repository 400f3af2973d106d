//! The operations files against real parts: a real Prometheus scrapes the
//! running ingest (fed by the real broker) and every PromQL expression of the
//! shipped dashboard returns data; promtool accepts the shipped configuration
//! and rules; every metric a panel or alert names exists.

mod broker;
mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use broker::{Broker, Service, ServiceArgs, free_port, keyed_lines, wait_caught_up};
use common::{conformance, manifest_dir, metric, scrape, scrape_until};
use huoyue_ingest::metrics::Metrics;

fn repo() -> PathBuf {
    manifest_dir().join("..")
}

fn dashboard() -> PathBuf {
    repo().join("deploy/grafana/dashboards/huoyue-ingest.json")
}

fn rules() -> PathBuf {
    repo().join("deploy/prometheus/alert-rules.yml")
}

fn promql_check(args: &[&str]) -> std::process::Output {
    Command::new("python3")
        .arg(repo().join("scripts/promql_check.py"))
        .args(args)
        .output()
        .expect("run python3 scripts/promql_check.py")
}

#[test]
fn every_metric_the_dashboard_and_alerts_name_exists() {
    let dir = tempfile::tempdir().unwrap();
    let names = dir.path().join("names.txt");
    std::fs::write(&names, Metrics::new().names().join("\n")).unwrap();
    let out = promql_check(&[
        "--dashboard",
        dashboard().to_str().unwrap(),
        "--rules",
        rules().to_str().unwrap(),
        "--metric-names",
        names.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // and the check does fail on a name that does not exist
    let text = std::fs::read_to_string(&names).unwrap();
    let fewer: Vec<&str> = text
        .lines()
        .filter(|n| *n != "huoyue_events_read_total")
        .collect();
    std::fs::write(&names, fewer.join("\n")).unwrap();
    let out = promql_check(&[
        "--dashboard",
        dashboard().to_str().unwrap(),
        "--metric-names",
        names.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("huoyue_events_read_total"));
}

#[test]
fn promtool_accepts_the_shipped_config_and_rules() {
    for args in [
        vec![
            "check".to_owned(),
            "config".to_owned(),
            repo()
                .join("deploy/prometheus/prometheus.yml")
                .display()
                .to_string(),
        ],
        vec![
            "check".to_owned(),
            "rules".to_owned(),
            rules().display().to_string(),
        ],
        vec![
            "test".to_owned(),
            "rules".to_owned(),
            repo()
                .join("deploy/prometheus/alert-rules.test.yml")
                .display()
                .to_string(),
        ],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(repo().join("deploy/prometheus"))
            .output()
            .expect("promtool (Debian package prometheus; scripts/install-tools installs it)");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Kills the child on drop.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_real_prometheus_scraping_the_ingest_answers_every_dashboard_query() {
    let broker = Broker::start();
    broker.create_topic("events", 2);
    broker.create_topic("events.dlq", 1);
    let input = conformance().join("events.ndjson");
    let messages = keyed_lines(&input);
    let (first, rest) = messages.split_at(messages.len() / 3);
    broker.produce("events", first);

    let lake = tempfile::tempdir().unwrap();
    let log = lake.path().join("ingest.log");
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    // instance "one" of group "g" on the lake, its metrics on `port`
    let start = |port: u16, extra: &[&str]| {
        let mut args = vec!["--metrics-addr".to_owned(), format!("127.0.0.1:{port}")];
        args.extend(extra.iter().map(|a| a.to_string()));
        Service::start(
            &ServiceArgs {
                lake: lake.path(),
                broker: &broker,
                topic: "events",
                group: "g",
                instance: "one",
                extra: args,
            },
            &log,
        )
    };
    let metrics_port = free_port();
    let svc = start(metrics_port, &["--flush-interval", "1s"]);

    let prom_dir = tempfile::tempdir().unwrap();
    let prom_port = free_port();
    let config = prom_dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: huoyue-ingest\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    )
    .unwrap();
    let _prom = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                prom_dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian package; scripts/install-tools installs it)"),
    );

    // events keep flowing while Prometheus scrapes, so rates are not zero
    wait_caught_up(
        lake.path(),
        "g",
        "events",
        first.len(),
        Duration::from_secs(60),
        &logs,
    );
    for chunk in rest.chunks(rest.len() / 4 + 1) {
        std::thread::sleep(Duration::from_secs(3));
        broker.produce("events", chunk);
    }
    wait_caught_up(
        lake.path(),
        "g",
        "events",
        messages.len(),
        Duration::from_secs(60),
        &logs,
    );

    let out = promql_check(&[
        "--prometheus",
        &format!("http://127.0.0.1:{prom_port}"),
        "--dashboard",
        dashboard().to_str().unwrap(),
        "--rules",
        rules().to_str().unwrap(),
        "--retry-for",
        "60",
    ]);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}\n--- ingest\n{}", logs());

    // with nothing more to read, the last checkpoint still counts as recent
    // (HuoyueCheckpointTooOld must not fire on a quiet night)
    let idle_since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    std::thread::sleep(Duration::from_millis(2500));
    let text = scrape(metrics_port).unwrap();
    let last = text
        .lines()
        .find_map(|l| l.strip_prefix("huoyue_last_checkpoint_timestamp_seconds "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no last checkpoint in {text}"));
    assert!(
        last >= idle_since.floor() + 1.0,
        "{last} vs idle since {idle_since}"
    );
    // the sizing figures are the real ones: what the last checkpoint wrote
    // (no new one while idle): its file and its segment, the last it
    // lists; every accepted event's id remembered (the conformance case has
    // none late), the process's memory under its limit
    let value = |name: &str| metric(&text, name).unwrap_or_else(|| panic!("no {name} in {text}"));
    let dir = lake.path().join("_checkpoints/g/events");
    let ckpt = huoyue_ingest::checkpoint::Checkpoint::load_all(&dir)
        .unwrap()
        .remove(0);
    let segment = &ckpt.segments.last().expect("a segment").name;
    let written = std::fs::metadata(dir.join("one.ckpt")).unwrap().len()
        + std::fs::metadata(dir.join(segment)).unwrap().len();
    assert_eq!(value("huoyue_checkpoint_bytes"), written as f64);
    assert_eq!(value("huoyue_engine_remembered_ids"), 12_309.0);
    let resident = value("huoyue_resident_memory_bytes");
    assert!(resident > 1e6, "{resident}");
    assert!(value("huoyue_memory_limit_bytes") > resident);
    assert!(
        svc.terminate(Duration::from_secs(15)).success(),
        "{}",
        logs()
    );

    // restarted with nothing new to read, it shows the state it restored
    // (not zeros until its first checkpoint, which nothing new would bring)
    let port = free_port();
    let again = start(port, &[]);
    let text = scrape_until(
        port,
        "the restored state",
        Duration::from_secs(60),
        |text| metric(text, "huoyue_engine_remembered_ids") == Some(12_309.0),
        || format!("\n--- ingest\n{}", logs()),
    );
    assert_eq!(
        metric(&text, "huoyue_checkpoint_bytes"),
        Some(written as f64)
    );
    assert!(metric(&text, "huoyue_engine_users").unwrap() > 0.0);
    assert!(
        again.terminate(Duration::from_secs(15)).success(),
        "{}",
        logs()
    );
}

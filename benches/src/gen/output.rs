//! Writing a whole data set: events to NDJSON, rosters to CSV.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};

use super::config::GenConfig;
use super::roster::Roster;
use super::stats::GenStats;
use super::stream::{EventStream, Line};

/// Generates `cfg` into `out_dir`: `events.ndjson`, `dims/schools.csv` and
/// `dims/users.csv` (directories are created; files are replaced).
pub fn generate(cfg: &GenConfig, out_dir: &Path) -> Result<GenStats> {
    let dims = out_dir.join("dims");
    fs::create_dir_all(&dims).with_context(|| format!("cannot create {}", dims.display()))?;
    let create = |p: &Path| -> Result<BufWriter<File>> {
        let f = File::create(p).with_context(|| format!("cannot create {}", p.display()))?;
        Ok(BufWriter::with_capacity(1 << 20, f))
    };
    let events_path = out_dir.join("events.ndjson");
    let mut events = create(&events_path)?;
    let mut schools = create(&dims.join("schools.csv"))?;
    let mut users = create(&dims.join("users.csv"))?;
    let stats = generate_to(cfg, &mut events, &mut schools, &mut users)
        .with_context(|| format!("writing into {}", out_dir.display()))?;
    for (w, name) in [
        (&mut events, "events.ndjson"),
        (&mut schools, "schools.csv"),
        (&mut users, "users.csv"),
    ] {
        w.flush().with_context(|| format!("cannot write {name}"))?;
        w.get_ref()
            .sync_all()
            .with_context(|| format!("cannot sync {name}"))?;
    }
    Ok(stats)
}

/// Generates `cfg` into three writers: the NDJSON events (one line each,
/// `\n`-terminated) and the two roster CSVs. Wrap files in a `BufWriter`;
/// this function writes small pieces.
pub fn generate_to(
    cfg: &GenConfig,
    events: &mut impl Write,
    schools: &mut impl Write,
    users: &mut impl Write,
) -> Result<GenStats> {
    let started = Instant::now();
    let roster = Arc::new(Roster::new(cfg).map_err(|e| anyhow!(e))?);
    roster
        .write_schools_csv(schools)
        .context("writing schools.csv")?;
    roster.write_users_csv(users).context("writing users.csv")?;
    let mut stream = EventStream::with_roster(cfg, roster);
    while let Some(line) = stream.next_line() {
        events.write_all(line.bytes)?;
        events.write_all(b"\n")?;
    }
    events.flush()?;
    let mut stats = stream.stats().clone();
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// Calls `f` with every line in arrival order (bytes without the newline,
/// the Kafka key, the kind); stops at the first error. The rosters are not
/// written: use [`Roster::write_schools_csv`] and
/// [`Roster::write_users_csv`] for them.
pub fn for_each_line<F>(cfg: &GenConfig, mut f: F) -> Result<GenStats>
where
    F: FnMut(Line<'_>) -> io::Result<()>,
{
    let mut stream = EventStream::new(cfg).map_err(|e| anyhow!(e))?;
    while let Some(line) = stream.next_line() {
        f(line)?;
    }
    Ok(stream.stats().clone())
}

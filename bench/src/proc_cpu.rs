//! Server CPU time from `/proc`, for both bench binaries.

type Error = Box<dyn std::error::Error + Send + Sync>;

/// User + system CPU time of `pids` and all their descendants, in clock ticks
/// (`/proc/<pid>/stat` fields 14 and 15; threads that ended are included).
pub fn cpu_ticks(pids: &[u32]) -> Result<u64, Error> {
    cpu_ticks_split(pids).map(|(user, sys)| user + sys)
}

/// [`cpu_ticks`] as (user, system).
pub fn cpu_ticks_split(pids: &[u32]) -> Result<(u64, u64), Error> {
    let (mut user, mut sys) = (0, 0);
    let mut todo = pids.to_vec();
    while let Some(pid) = todo.pop() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // The command name (field 2) may hold spaces; fields count from after it.
        let rest = &stat[stat.rfind(')').ok_or("bad /proc stat")? + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        user += fields[11].parse::<u64>()?;
        sys += fields[12].parse::<u64>()?;
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let children = std::fs::read_to_string(task?.path().join("children"))?;
            todo.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    Ok((user, sys))
}

pub fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

//! Pinning threads to CPUs (`runtime.cpus`). An impossible pinning is a warning, never a crash: the
//! thread then runs wherever the scheduler (or an outer `taskset`) puts it.

/// Pins the calling thread to `cpu` if given and possible, and logs where it runs.
pub fn pin(thread: &str, cpu: Option<usize>) {
    let Some(cpu) = cpu else {
        log::info!("event=thread_started thread={thread} cpu=unpinned");
        return;
    };
    let available = core_affinity::get_core_ids().unwrap_or_default();
    match available.iter().find(|c| c.id == cpu) {
        Some(core) if core_affinity::set_for_current(*core) => {
            log::info!("event=thread_started thread={thread} cpu={cpu}");
        }
        Some(_) => log::warn!(
            "event=pin_failed thread={thread} cpu={cpu} reason=\"sched_setaffinity refused\""
        ),
        None => {
            let ids: Vec<String> = available.iter().map(|c| c.id.to_string()).collect();
            log::warn!(
                "event=pin_failed thread={thread} cpu={cpu} reason=\"cpu not available\" available=[{}]",
                ids.join(",")
            );
        }
    }
}

//! The process's memory allocator: jemalloc, and the two controls Kura uses on it.
//!
//! Why jemalloc: a server holding gigabytes of small index entries fragments glibc's heap so
//! badly that every later small allocation pays for it (`malloc_consolidate` walks the free
//! lists); a statement's fixed cost tripled on a 10-million-row table. jemalloc keeps size
//! classes in separate runs and its cost does not grow with the heap.
//!
//! Invariant: memory a release frees (expired data partitions, dropped tables) goes back to
//! the operating system — at once when [`return_free_memory`] is called, and otherwise within
//! jemalloc's decay time through its background purging threads.

use std::ffi::CStr;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Starts jemalloc's background threads, which return unused dirty pages to the operating
/// system over time even when no thread allocates. Failure only costs memory, so it is logged.
pub fn start_background_purge() {
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!("jemalloc background purging unavailable: {e}");
    }
}

/// Drops `value` on a thread of its own and then returns the freed pages to the OS. Freeing a
/// large table (millions of rows and index entries) takes seconds, which must not hold a lock
/// or stall a thread that serves queries. If no thread can be started, `value` is dropped here.
pub fn free_in_background<T: Send + 'static>(value: T) {
    let spawned = std::thread::Builder::new()
        .name("kura-free".into())
        .spawn(move || {
            drop(value);
            return_free_memory();
        });
    if let Err(e) = spawned {
        tracing::warn!("could not start a thread to free memory: {e}");
    }
}

/// Returns every arena's unused pages to the operating system now, so the resident size falls
/// right after a mass release instead of after the decay time.
pub fn return_free_memory() {
    // MALLCTL_ARENAS_ALL (4096) addresses every arena at once.
    const PURGE_ALL: &CStr = c"arena.4096.purge";
    // SAFETY: `arena.<i>.purge` is a void control: it reads and writes no value, so all the
    // value pointers are null, as jemalloc's manual prescribes, and the name is NUL-terminated.
    let status = unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    if status != 0 {
        tracing::warn!("jemalloc purge failed with error {status}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The process's resident size from `/proc/self/status`, in bytes.
    fn resident_bytes() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .expect("VmRSS line");
        let kb: usize = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .expect("VmRSS value");
        kb * 1024
    }

    #[test]
    fn purge_returns_freed_small_allocations_at_once() {
        // Small blocks, like index entries: freed, their pages stay with jemalloc until the
        // decay time (10 s; no background threads in unit tests) unless purged.
        let blocks: Vec<Box<[u8; 128]>> =
            (0..2_000_000).map(|i| Box::new([i as u8; 128])).collect();
        let with = resident_bytes();
        drop(blocks);
        return_free_memory();
        let after = resident_bytes();
        assert!(
            after + (128 << 20) < with,
            "resident {with} -> {after} bytes"
        );
    }

    #[test]
    fn a_value_freed_in_the_background_is_dropped_off_the_calling_thread() {
        struct Signal(std::sync::mpsc::Sender<std::thread::ThreadId>);
        impl Drop for Signal {
            fn drop(&mut self) {
                let _ = self.0.send(std::thread::current().id());
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        free_in_background(Signal(tx));
        let dropped_on = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the value is dropped");
        assert_ne!(dropped_on, std::thread::current().id());
    }
}

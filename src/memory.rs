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

/// Bytes the process has allocated and not freed, and bytes in pages jemalloc keeps
/// resident, as of now.
pub fn allocated_and_resident() -> Option<(usize, usize)> {
    tikv_jemalloc_ctl::epoch::advance().ok()?;
    let allocated = tikv_jemalloc_ctl::stats::allocated::read().ok()?;
    let resident = tikv_jemalloc_ctl::stats::resident::read().ok()?;
    Some((allocated, resident))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_returns_freed_pages() {
        let block: Vec<u8> = vec![1; 256 << 20];
        let (allocated, resident_with) = allocated_and_resident().expect("jemalloc stats");
        assert!(allocated >= block.len() && resident_with >= block.len());
        drop(block);
        return_free_memory();
        let (_, resident_after) = allocated_and_resident().expect("jemalloc stats");
        assert!(
            resident_after + (128 << 20) < resident_with,
            "resident {resident_with} -> {resident_after} bytes"
        );
    }
}

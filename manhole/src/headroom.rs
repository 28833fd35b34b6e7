//! Whether the process has room for what manhole is about to allocate: a dump's debug info
//! and stack copies, a new thread's stack.
//!
//! An allocation that fails aborts a Rust program, so a dump never *tries* its luck: before
//! loading debug info (tens of MiB for a large program) or copying stacks, it checks the two
//! limits that make allocations fail while the machine still has memory: the address-space
//! limit (`ulimit -v`, by mapping the amount and unmapping it again) and the memory limit of
//! the process's cgroup (v2: `memory.max` less `memory.current`).

use std::ffi::c_void;

/// Room needed besides the objects' own sizes.
const BASE_NEED: usize = 16 << 20;

/// Checks that `bytes` more could be allocated now; the reason if not.
pub(crate) fn check(bytes: usize) -> Result<(), String> {
    if let Some((limit, used)) = cgroup_memory() {
        let left = limit.saturating_sub(used);
        if (left as usize) < bytes {
            return Err(format!(
                "the cgroup's memory limit leaves {} MiB, about {} MiB are needed",
                left >> 20,
                bytes >> 20
            ));
        }
    }
    // SAFETY: an anonymous private mapping with no address hint, never touched, unmapped
    // right away: it only asks whether the address space has room.
    let probe = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if probe == libc::MAP_FAILED {
        return Err(format!(
            "the address-space limit (ulimit -v) leaves less than the {} MiB needed",
            bytes >> 20
        ));
    }
    // SAFETY: `probe` is the mapping just made, `bytes` long.
    unsafe { libc::munmap(probe, bytes) };
    Ok(())
}

/// Checks there is room to load the debug info of the objects that hold `addresses`.
pub(crate) fn for_symbols(addresses: &[usize]) -> Result<(), String> {
    let need = objects_holding(addresses)
        .iter()
        .map(|path| std::fs::metadata(path).map_or(0, |m| m.len() as usize))
        .fold(BASE_NEED, |total, size| {
            total.saturating_add(size.saturating_mul(3))
        });
    check(need).map_err(|why| format!("frames are not named: {why}"))
}

/// The files of the loaded objects that hold any of `addresses`.
fn objects_holding(addresses: &[usize]) -> Vec<std::path::PathBuf> {
    struct Search<'a> {
        addresses: &'a [usize],
        found: Vec<std::path::PathBuf>,
    }
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> libc::c_int {
        // SAFETY: dl_iterate_phdr passes a valid info for the call, and `data` is the Search
        // handed to it below.
        let (info, search) = unsafe { (&*info, &mut *data.cast::<Search<'_>>()) };
        if info.dlpi_phdr.is_null() {
            return 0;
        }
        // SAFETY: dlpi_phdr points to dlpi_phnum program headers of this object.
        let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
        let base = info.dlpi_addr as usize;
        let holds = headers.iter().filter(|h| h.p_type == libc::PT_LOAD).any(|h| {
            let range = base + h.p_vaddr as usize..base + (h.p_vaddr + h.p_memsz) as usize;
            search.addresses.iter().any(|a| range.contains(a))
        });
        if holds {
            let name = (!info.dlpi_name.is_null())
                .then(|| {
                    // SAFETY: dlpi_name is a NUL-terminated string owned by the loader.
                    unsafe { std::ffi::CStr::from_ptr(info.dlpi_name) }
                        .to_string_lossy()
                        .into_owned()
                })
                .filter(|n| !n.is_empty());
            match name {
                Some(name) => search.found.push(name.into()),
                None => search.found.push("/proc/self/exe".into()),
            }
        }
        0
    }
    let mut search = Search {
        addresses,
        found: Vec::new(),
    };
    // SAFETY: `visit` matches the callback type and only touches `search`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut search as *mut Search<'_>).cast()) };
    search.found
}

/// The memory limit and usage of this process's cgroup (v2), when it has a limit.
fn cgroup_memory() -> Option<(u64, u64)> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = membership.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let limit: u64 = read("memory.max")?.trim().parse().ok()?; // "max": no limit
    let used: u64 = read("memory.current")?.trim().parse().ok()?;
    Some((limit, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_amount_fits_and_an_absurd_one_does_not() {
        assert_eq!(check(1 << 20), Ok(()));
        let absurd = check(usize::MAX / 2).unwrap_err();
        assert!(absurd.contains("MiB"), "{absurd}");
    }

    #[test]
    fn the_executable_holds_its_own_code() {
        let here = the_executable_holds_its_own_code as *const () as usize;
        let found = objects_holding(&[here]);
        assert_eq!(found.len(), 1, "{found:?}");
    }
}

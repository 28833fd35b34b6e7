//! Walking a thread's stack from its registers and a copy of its stack memory, on the dumper's
//! thread, with framehop and the `.eh_frame` unwind tables of every loaded object.
//!
//! The signal handler only copies (see [`super::sampler`]); the walk happens here, afterwards,
//! where nothing it does can hurt the interrupted thread: every read of stack memory is a
//! bounds-checked read of the copy, so a stack the program switched to itself, a frame without
//! unwind information or a corrupt return address ends the walk with a note instead of a fault.
//! libgcc's unwinder (and its `object_mutex`, taken on every lookup once a JIT registers frames)
//! is never used.
//!
//! The unwind tables are copied out of each object's mapped `PT_GNU_EH_FRAME` and the segment
//! after it while the dynamic loader's lock is held (inside `dl_iterate_phdr`), so a library
//! unloaded later cannot leave a dangling reference. They are rebuilt when objects are loaded
//! or unloaded, and released with the symbol caches ([`release`]).

use std::ffi::c_void;
use std::ops::Range;

use framehop::{FrameAddress, MayAllocateDuringUnwind, Module, ModuleSectionInfo, Unwinder};

use super::symbolize::Address;
use crate::forklock::ForkLock;

type Native = framehop::UnwinderNative<Vec<u8>, MayAllocateDuringUnwind>;
type Cache = framehop::CacheNative<MayAllocateDuringUnwind>;

/// The registers a walk starts from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Registers {
    pub(crate) pc: usize,
    pub(crate) sp: usize,
    /// The frame pointer (rbp, x29).
    pub(crate) fp: usize,
    /// The link register (x30) on aarch64; unused on x86_64.
    pub(crate) lr: usize,
}

/// Why a walk stopped before the thread's first frame, when it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    /// The copy of the stack ended (it is bounded) before the outermost frame.
    CopyEnded,
    /// No stack memory could be copied: only the interrupted frame is known.
    NoCopy,
    /// A frame's return address is in code without unwind information (JIT code, a stack the
    /// program switched to by hand): the walk cannot go on safely.
    NoUnwindInfo(usize),
    /// The deepest stack recorded was reached.
    TooDeep,
    /// The unwind information led nowhere sensible.
    Lost(String),
}

impl Cut {
    /// A sentence for the dump.
    pub(crate) fn describe(&self) -> String {
        match self {
            Cut::CopyEnded => "stack cut: the rest lies beyond the part of the stack copied".to_owned(),
            Cut::NoCopy => "only the interrupted frame: the stack could not be copied".to_owned(),
            Cut::NoUnwindInfo(at) => {
                format!("stack cut at {at:#x}: code without unwind information (JIT or hand-switched stack)")
            }
            Cut::TooDeep => format!("stack cut after {MAX_FRAMES} frames"),
            Cut::Lost(why) => format!("stack cut: {why}"),
        }
    }
}

/// The deepest stack walked.
pub(crate) const MAX_FRAMES: usize = 256;

struct State {
    unwinder: Native,
    cache: Cache,
    /// Where each loaded object lies.
    ranges: Vec<Range<usize>>,
    /// `dlpi_adds`, `dlpi_subs` when the modules were read.
    generation: (u64, u64),
}

static STATE: ForkLock<Option<State>> = ForkLock::new(None);

/// Walks one stack. `stack` holds the bytes of memory from `regs.sp` up.
pub(crate) fn walk(regs: Registers, stack: &[u8]) -> (Vec<Address>, Option<Cut>) {
    let mut state = STATE.lock();
    if state.inherited {
        // Half-changed by the parent at fork, maybe: forget it without running its destructors.
        std::mem::forget(state.take());
    }
    let generation = loader_generation();
    if state.as_ref().is_none_or(|s| s.generation != generation) {
        let (unwinder, ranges) = build_unwinder();
        *state = Some(State {
            unwinder,
            cache: Cache::new(),
            ranges,
            generation,
        });
    }
    let Some(State {
        unwinder,
        cache,
        ranges,
        ..
    }) = state.as_mut()
    else {
        return (vec![Address::Exact(regs.pc)], Some(Cut::NoCopy));
    };
    let base = regs.sp as u64;
    let mut read_stack = |address: u64| -> Result<u64, ()> {
        let offset = usize::try_from(address.checked_sub(base).ok_or(())?).map_err(|_| ())?;
        let bytes = stack.get(offset..offset.checked_add(8).ok_or(())?).ok_or(())?;
        Ok(u64::from_ne_bytes(bytes.try_into().map_err(|_| ())?))
    };
    #[cfg(target_arch = "x86_64")]
    let start = framehop::x86_64::UnwindRegsX86_64::new(regs.pc as u64, regs.sp as u64, regs.fp as u64);
    // Return addresses signed by pointer authentication are stripped down to the highest
    // address any loaded object uses.
    #[cfg(target_arch = "aarch64")]
    let start = framehop::aarch64::UnwindRegsAarch64::new_with_ptr_auth_mask(
        framehop::aarch64::PtrAuthMask::from_max_known_address(unwinder.max_known_code_address()),
        regs.lr as u64,
        regs.sp as u64,
        regs.fp as u64,
    );
    let mut frames = unwinder.iter_frames(regs.pc as u64, start, cache, &mut read_stack);
    let mut addresses = Vec::with_capacity(32);
    let cut = loop {
        if addresses.len() >= MAX_FRAMES {
            break Some(Cut::TooDeep);
        }
        match frames.next() {
            Ok(Some(FrameAddress::InstructionPointer(pc))) => addresses.push(Address::Exact(pc as usize)),
            Ok(Some(FrameAddress::ReturnAddress(ra))) => {
                addresses.push(Address::Return(u64::from(ra) as usize));
            }
            Ok(None) => break None,
            Err(framehop::Error::CouldNotReadStack(_)) if stack.is_empty() => break Some(Cut::NoCopy),
            Err(framehop::Error::CouldNotReadStack(_)) => break Some(Cut::CopyEnded),
            Err(e) => break Some(Cut::Lost(e.to_string())),
        }
    };
    // A return address outside every known object means the walk went astray (or into JIT
    // code): keep what came before and say where it stopped.
    if let Some(at) = addresses
        .iter()
        .skip(1)
        .position(|a| !ranges.iter().any(|r| r.contains(&address_of(*a))))
    {
        let bad = address_of(addresses[at + 1]);
        addresses.truncate(at + 2);
        return (addresses, Some(Cut::NoUnwindInfo(bad)));
    }
    let cut = match cut {
        Some(Cut::NoCopy) if addresses.len() > 1 => Some(Cut::CopyEnded),
        other => other,
    };
    (addresses, cut)
}

fn address_of(address: Address) -> usize {
    match address {
        Address::Return(a) | Address::Exact(a) => a,
    }
}

/// Drops the unwind tables (they are rebuilt by the next walk).
pub(crate) fn release() {
    let mut state = STATE.lock();
    if state.inherited {
        std::mem::forget(state.take());
    } else {
        *state = None;
    }
}

/// What `dl_iterate_phdr` tells of one object, with its unwind tables copied.
struct Object {
    name: String,
    base: usize,
    avma: Range<usize>,
    text: Option<Range<usize>>,
    eh_frame_hdr: Option<(Range<usize>, Vec<u8>)>,
    eh_frame: Option<(Range<usize>, Vec<u8>)>,
}

/// How framehop sees one object: section ranges as stated in the file (relative to its base).
struct Sections {
    base: usize,
    text: Option<Range<usize>>,
    eh_frame_hdr: Option<(Range<usize>, Vec<u8>)>,
    eh_frame: Option<(Range<usize>, Vec<u8>)>,
}

impl ModuleSectionInfo<Vec<u8>> for Sections {
    fn base_svma(&self) -> u64 {
        0
    }

    fn section_svma_range(&mut self, name: &[u8]) -> Option<Range<u64>> {
        let base = self.base as u64;
        let range = match name {
            b".eh_frame_hdr" => self.eh_frame_hdr.as_ref().map(|(r, _)| r.clone()),
            b".eh_frame" => self.eh_frame.as_ref().map(|(r, _)| r.clone()),
            b".text" => self.text.clone(),
            _ => None,
        }?;
        Some(range.start as u64 - base..range.end as u64 - base)
    }

    fn section_data(&mut self, name: &[u8]) -> Option<Vec<u8>> {
        match name {
            b".eh_frame_hdr" => self.eh_frame_hdr.as_mut().map(|(_, d)| std::mem::take(d)),
            b".eh_frame" => self.eh_frame.as_mut().map(|(_, d)| std::mem::take(d)),
            _ => None,
        }
    }
}

fn build_unwinder() -> (Native, Vec<Range<usize>>) {
    let objects = loaded_objects();
    let ranges = objects.iter().map(|o| o.avma.clone()).collect();
    let mut unwinder = Native::new();
    for object in objects {
        let sections = Sections {
            base: object.base,
            text: object.text,
            eh_frame_hdr: object.eh_frame_hdr,
            eh_frame: object.eh_frame,
        };
        unwinder.add_module(Module::new(
            object.name,
            object.avma.start as u64..object.avma.end as u64,
            object.base as u64,
            sections,
        ));
    }
    (unwinder, ranges)
}

/// The loader's counts of objects loaded and unloaded so far: a change means the tables are
/// out of date.
fn loader_generation() -> (u64, u64) {
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        size: libc::size_t,
        data: *mut c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the tuple handed to dl_iterate_phdr below; `info` is valid for the
        // call, and the counters exist when `size` covers them.
        unsafe {
            let out = &mut *data.cast::<(u64, u64)>();
            let needed = std::mem::offset_of!(libc::dl_phdr_info, dlpi_subs) + std::mem::size_of::<u64>();
            if size >= needed {
                *out = ((*info).dlpi_adds, (*info).dlpi_subs);
            }
        }
        1 // the first object is enough: the counters are global
    }
    let mut out = (0u64, 0u64);
    // SAFETY: `visit` matches the callback type and writes only to `out`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut out as *mut (u64, u64)).cast()) };
    out
}

/// Every loaded object with a copy of its unwind tables.
fn loaded_objects() -> Vec<Object> {
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> libc::c_int {
        // SAFETY: dl_iterate_phdr passes a valid info for the duration of the call (with the
        // loader's lock held, so the object cannot be unloaded meanwhile), and `data` is the
        // Vec handed to it below.
        let (info, objects) = unsafe { (&*info, &mut *data.cast::<Vec<Object>>()) };
        if info.dlpi_phdr.is_null() {
            return 0;
        }
        // SAFETY: dlpi_phdr points to dlpi_phnum program headers of this object.
        let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
        let base = info.dlpi_addr as usize;
        let name = if info.dlpi_name.is_null() {
            String::new()
        } else {
            // SAFETY: dlpi_name is a NUL-terminated string owned by the loader.
            unsafe { std::ffi::CStr::from_ptr(info.dlpi_name) }
                .to_string_lossy()
                .into_owned()
        };
        let loads: Vec<Range<usize>> = headers
            .iter()
            .filter(|h| h.p_type == libc::PT_LOAD)
            .map(|h| base + h.p_vaddr as usize..base + (h.p_vaddr + h.p_memsz) as usize)
            .collect();
        let (Some(start), Some(end)) = (
            loads.iter().map(|r| r.start).min(),
            loads.iter().map(|r| r.end).max(),
        ) else {
            return 0;
        };
        let text = headers
            .iter()
            .find(|h| h.p_type == libc::PT_LOAD && h.p_flags & libc::PF_X != 0)
            .map(|h| base + h.p_vaddr as usize..base + (h.p_vaddr + h.p_memsz) as usize);
        let mut object = Object {
            name,
            base,
            avma: start..end,
            text,
            eh_frame_hdr: None,
            eh_frame: None,
        };
        if let Some(hdr) = headers.iter().find(|h| h.p_type == libc::PT_GNU_EH_FRAME) {
            let hdr_range = base + hdr.p_vaddr as usize..base + (hdr.p_vaddr + hdr.p_memsz) as usize;
            // Both tables must lie inside a loaded segment: that is what makes reading them safe.
            let segment_of = |at: usize| loads.iter().find(|r| r.contains(&at)).cloned();
            if segment_of(hdr_range.start).is_some_and(|s| hdr_range.end <= s.end) {
                // SAFETY: the range lies inside a PT_LOAD segment of a loaded object, mapped
                // readable for as long as the loader's lock is held.
                let hdr_bytes =
                    unsafe { std::slice::from_raw_parts(hdr_range.start as *const u8, hdr_range.len()) };
                if let Some(eh_frame_start) = eh_frame_address(hdr_bytes, hdr_range.start)
                    && let Some(segment) = segment_of(eh_frame_start)
                {
                    let eh_frame_range = eh_frame_start..segment.end;
                    // SAFETY: as above, inside one PT_LOAD segment.
                    let eh_bytes = unsafe {
                        std::slice::from_raw_parts(eh_frame_range.start as *const u8, eh_frame_range.len())
                    };
                    // Copies that cannot be had (an address-space limit) leave the object
                    // without tables rather than abort the program.
                    if let (Some(eh), Some(hdr)) = (try_copy(eh_bytes), try_copy(hdr_bytes)) {
                        object.eh_frame = Some((eh_frame_range, eh));
                        object.eh_frame_hdr = Some((hdr_range, hdr));
                    }
                }
            }
        }
        objects.push(object);
        0
    }
    let mut objects: Vec<Object> = Vec::new();
    // SAFETY: `visit` matches the callback type and only touches `objects`, which outlives the
    // call; it reads only memory inside the objects' loaded segments.
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut objects as *mut Vec<Object>).cast()) };
    objects
}

/// A copy of `bytes`, or `None` if the memory for it cannot be had.
fn try_copy(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut copy = Vec::new();
    copy.try_reserve_exact(bytes.len()).ok()?;
    copy.extend_from_slice(bytes);
    Some(copy)
}

/// The address of `.eh_frame`, from the `eh_frame_ptr` field of `.eh_frame_hdr` at `at`.
fn eh_frame_address(hdr: &[u8], at: usize) -> Option<usize> {
    const DW_EH_PE_ABSPTR: u8 = 0x00;
    const DW_EH_PE_UDATA4: u8 = 0x03;
    const DW_EH_PE_SDATA4: u8 = 0x0b;
    const DW_EH_PE_SDATA8: u8 = 0x0c;
    const DW_EH_PE_PCREL: u8 = 0x10;
    let (&version, &encoding) = (hdr.first()?, hdr.get(1)?);
    if version != 1 {
        return None;
    }
    let field = at + 4;
    let value: i64 = match encoding & 0x0f {
        DW_EH_PE_SDATA4 => i64::from(i32::from_ne_bytes(hdr.get(4..8)?.try_into().ok()?)),
        DW_EH_PE_UDATA4 => i64::from(u32::from_ne_bytes(hdr.get(4..8)?.try_into().ok()?)),
        DW_EH_PE_SDATA8 | DW_EH_PE_ABSPTR => i64::from_ne_bytes(hdr.get(4..12)?.try_into().ok()?),
        _ => return None,
    };
    match encoding & 0x70 {
        0 => usize::try_from(value).ok(),
        DW_EH_PE_PCREL => Some((field as i64).wrapping_add(value) as usize),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eh_frame_pointers_are_decoded() {
        // version 1, pcrel|sdata4, then -16 relative to the field at offset 4.
        let mut hdr = vec![1u8, 0x1b, 0x03, 0x3b];
        hdr.extend_from_slice(&(-16i32).to_ne_bytes());
        assert_eq!(eh_frame_address(&hdr, 0x1000), Some(0x1000 + 4 - 16));
        hdr[0] = 2;
        assert_eq!(eh_frame_address(&hdr, 0x1000), None, "unknown version");
        assert_eq!(eh_frame_address(&[1, 0x1b], 0x1000), None, "short header");
    }

    #[test]
    fn every_object_of_this_process_has_unwind_tables() {
        let objects = loaded_objects();
        let exe = objects.first().expect("the executable is listed first");
        assert!(
            exe.eh_frame_hdr.is_some() && exe.eh_frame.is_some(),
            "{}",
            exe.name
        );
        assert!(objects.iter().any(|o| o.name.contains("libc")), "libc is loaded");
    }
}

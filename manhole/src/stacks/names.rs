//! Full thread names. The kernel keeps only 15 bytes of a name (`/proc/<tid>/comm`), so a
//! thread can register the full name Rust knows it by; dumps then show that instead.

use std::collections::HashMap;

use crate::sys;

/// Behind a fork-aware lock: a child forked while a thread registered its name must still dump.
static NAMES: crate::forklock::ForkLock<Option<HashMap<i32, String>>> = crate::forklock::ForkLock::new(None);

/// Removes the calling thread's entry when the thread exits, so a later thread that gets the
/// same id does not inherit the name.
struct Registration(i32);

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(names) = NAMES.lock().as_mut() {
            names.remove(&self.0);
        }
    }
}

thread_local! {
    static REGISTERED: std::cell::RefCell<Option<Registration>> = const { std::cell::RefCell::new(None) };
}

/// Records `name` for the calling thread.
pub(crate) fn register(name: String) {
    let tid = sys::gettid();
    NAMES.lock().get_or_insert_with(HashMap::new).insert(tid, name);
    // If the thread is already being torn down, the entry simply stays until the id is reused
    // by a thread that registers again.
    let _ = REGISTERED.try_with(|slot| *slot.borrow_mut() = Some(Registration(tid)));
}

/// The registered name of `tid`, if its thread registered one.
pub(crate) fn lookup(tid: i32) -> Option<String> {
    NAMES.lock().as_ref()?.get(&tid).cloned()
}

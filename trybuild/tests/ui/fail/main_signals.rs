// Signal names are checked at compile time, and one signal cannot play two roles.
#[manhole::main(activate_on = "USR3")]
fn a() {}

#[manhole::main(oneshot_on = "KILL")]
fn b() {}

#[manhole::main(stack_signal = 99)]
fn c() {}

#[manhole::main(activate_on = "USR1", oneshot_on = "SIGUSR2")]
fn d() {}

#[manhole::main(activate_on = "USR1", thread = false)]
fn e() {}

#[manhole::main(oneshot_on = "TERM")]
fn f() {}

#[manhole::main(activate_on = 15)]
fn g() {}

#[manhole::main(activate_on = "USR1", oneshot_on = "SIGUSR1")]
fn main() {}

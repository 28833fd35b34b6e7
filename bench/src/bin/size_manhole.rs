//! The `size` benchmark's program with manhole: the baseline plus `manhole::install`.

use std::io::BufRead;

fn main() {
    let _handle = manhole::install(manhole::Options::new());
    let lines = std::io::stdin().lock().lines().count();
    println!("{lines} lines");
}

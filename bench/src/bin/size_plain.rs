//! The baseline of the `size` benchmark: a small program without manhole.

use std::io::BufRead;

fn main() {
    let lines = std::io::stdin().lock().lines().count();
    println!("{lines} lines");
}

// A syntax error inside main is reported by rustc at its token, not as a misplaced attribute.
#[manhole::main(verbose = false)]
fn main() {
    let answer = ;
    println!("{answer}");
}

fn main() {
    println!("ferrite {}", env!("CARGO_PKG_VERSION"));
}

fn main() {
    eprintln!("tether-load: being written");
}

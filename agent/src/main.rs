fn main() {
    std::process::exit(valkey_chaos::cli::main());
}

fn main() {
    std::process::exit(coffre::cli::main());
}

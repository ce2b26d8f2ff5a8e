fn main() -> std::process::ExitCode {
    sfc::cli::main()
}

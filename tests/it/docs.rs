//! The documentation says what the code does.

#[test]
fn readme_shows_the_configuration_the_code_parses() {
    let readme = include_str!("../../README.md");
    assert!(
        readme.contains(coffre::config::EXAMPLE),
        "README.md must contain coffre::config::EXAMPLE verbatim: update its Configuration section"
    );
    coffre::config::Config::from_str_at(
        coffre::config::EXAMPLE,
        std::path::Path::new("/etc/coffre/coffre.toml"),
    )
    .expect("the example parses");
}

#[test]
fn readme_names_the_test_command_that_ci_runs() {
    let readme = include_str!("../../README.md");
    let ci = include_str!("../../.ci/run");
    assert!(readme.contains("bash scripts/test.sh"));
    assert!(
        ci.contains("scripts/test.sh"),
        ".ci/run must call the README's test command"
    );
}

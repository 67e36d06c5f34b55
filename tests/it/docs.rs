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

#[test]
fn readme_shows_the_permission_matrix_and_every_route() {
    let readme = include_str!("../../README.md");
    let matrix = coffre::auth::roles::markdown_matrix();
    assert!(
        readme.contains(&matrix),
        "README.md must contain the permission matrix verbatim:\n{matrix}"
    );
    for r in coffre::api::routes::ROUTES {
        let line = format!("| `{} {}` |", r.method, r.path);
        assert!(
            readme.contains(&line),
            "README.md must list the route {line}"
        );
    }
}

# choiceboard tasks. `just --list` shows them.

# Serve on 127.0.0.1:8080 with ./choiceboard.db
run *ARGS:
    cargo run --release -- {{ARGS}}

# The whole test suite (what the README says)
test:
    cargo test

# What CI runs: install PostgreSQL and Chromium when missing, then the suite with both required
ci:
    CI=true bash .ci/run

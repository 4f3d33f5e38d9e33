# choiceboard tasks. `just --list` shows them.

# Serve on 127.0.0.1:8080 with ./choiceboard.db
run *ARGS:
    cargo run --release -- {{ARGS}}

# The whole test suite (what the README says)
test:
    cargo test

# What CI runs: install PostgreSQL, Chromium and the MCP SDK when missing, then the suite with
# all three required
ci:
    CI=true bash .ci/run

# The load generator (bench/README.md): fan-out over SSE and WebSocket, durable commands, the
# plain-axum floor; `just bench --baselines` adds FastAPI and Socket.IO side by side
bench *ARGS:
    cargo run --release -p choiceboard-bench --bin bench -- {{ARGS}}

# Kill -9 the server at random moments under load; prints "acknowledged A, lost L, kills K"
soak *ARGS:
    cargo run --release -p choiceboard-bench --bin soak -- {{ARGS}}

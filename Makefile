# The commands a person (and CI) runs. `make test` is the README's test command.
.PHONY: test test-deps collect

# Installs what the tests need when it is missing (tools/test-deps.sh), then runs them.
test: test-deps
	cargo test --workspace --locked

test-deps:
	bash tools/test-deps.sh

# The main job on the embedded defaults (the README's first command).
collect:
	cargo run --release -- collect

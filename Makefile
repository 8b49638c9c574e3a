# The commands a person (and CI) runs. `make test` is the README's test command.
.PHONY: test test-deps collect up-prod up-dev down prune-prod prune-dev

# Installs what the tests need when it is missing (tools/test-deps.sh), then runs them.
test: test-deps
	cargo test --workspace --locked

test-deps:
	bash tools/test-deps.sh

# The main job on the embedded defaults (the README's first command).
collect:
	cargo run --release -- collect

# The collector, PostgreSQL (TimescaleDB), Redis and Prometheus in containers (deploy/),
# one compose project per environment, each with its own volumes.
COMPOSE = docker compose -f deploy/docker-compose.yml
COMPOSE_PROD = $(COMPOSE) -f deploy/docker-compose.prod.yml -p stock-observer-prod
COMPOSE_DEV = $(COMPOSE) -f deploy/docker-compose.dev.yml -p stock-observer-dev

up-prod:
	APP_ENV=production $(COMPOSE_PROD) up -d --build

up-dev:
	APP_ENV=development $(COMPOSE_DEV) up -d --build

# Stops both environments; their volumes (the archive) are kept.
down:
	$(COMPOSE_PROD) down
	$(COMPOSE_DEV) down

# Removes one environment's containers, networks, volumes (its archive and database too)
# and locally built images; the other environment is untouched.
prune-prod:
	$(COMPOSE_PROD) down --volumes --remove-orphans --rmi local

prune-dev:
	$(COMPOSE_DEV) down --volumes --remove-orphans --rmi local

# The commands a person (and CI) runs. `make test` is the README's test command.
.PHONY: test test-deps collect up-prod up-dev down prune-prod prune-dev \
	debug-status debug-pipeline debug-slots debug-gaps debug-db debug-bus

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

# What an operator needs from a running collector (its /health and /metrics at URL) or a data
# dir, in plain text (`stock-observer debug --help`). DATE=YYYYMMDD picks a day for slots and
# gaps (default: today, KST).
DATA_DIR ?= ./data
URL ?= http://127.0.0.1:9464
STOCK_OBSERVER ?= cargo run --release --quiet --
DEBUG_DATE = $(if $(DATE),--date $(DATE))

debug-status:
	$(STOCK_OBSERVER) debug status --url $(URL) --data-dir $(DATA_DIR)

debug-pipeline:
	$(STOCK_OBSERVER) debug pipeline --url $(URL)

debug-slots:
	$(STOCK_OBSERVER) debug slots --url $(URL) --data-dir $(DATA_DIR) $(DEBUG_DATE)

debug-gaps:
	$(STOCK_OBSERVER) debug gaps --data-dir $(DATA_DIR) $(DEBUG_DATE)

debug-db:
	$(STOCK_OBSERVER) debug db --data-dir $(DATA_DIR)

debug-bus:
	$(STOCK_OBSERVER) debug bus

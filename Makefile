# Conveyor: build the common library, the four services and the tests.
#   make            build everything (warning-free, -Werror)
#   make test       unit, integration and end-to-end tests against a real Kafka and PostgreSQL
#   make asan       the same tests built with AddressSanitizer + UndefinedBehaviorSanitizer
#   make compose-test  docker-compose.yml for real: scaled, replicas killed, down and up again
#   make up / down  run the whole system natively / stop it (REPLICAS="inventory=3 shipping=2")
#   make lint       formatting (clang-format), clang-tidy and cppcheck
#   make bench      benchmarks that print figures
#   make fuzz       coverage-guided fuzzing of the input parsers (FUZZ_SECONDS per harness)

CC ?= cc
BUILD ?= build
PKGS := rdkafka avro-c libmicrohttpd jansson libpq libcurl libcrypto
SAN_FLAGS ?=
OPT ?= -O2

CFLAGS_ALL := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes \
	-Wno-unused-parameter -g $(OPT) -pthread -fno-omit-frame-pointer $(SAN_FLAGS) \
	-Icommon/include -I$(BUILD)/gen $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(CFLAGS)
LDLIBS_ALL := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -pthread $(SAN_FLAGS) $(LDFLAGS)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

SERVICES := order inventory shipping audit
SCHEMAS := $(sort $(wildcard schemas/*.avsc)) $(sort $(wildcard schemas/released/*/*.avsc))

COMMON_SRC := $(sort $(wildcard common/src/*.c common/src/*/*.c))
COMMON_SQL := $(sort $(wildcard common/sql/*.sql))
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/schemas_embed.o \
	$(BUILD)/gen/common_migrations.o
LIB := $(BUILD)/libconveyor.a

BINS := $(SERVICES:%=$(BUILD)/bin/%-service) $(BUILD)/bin/cv-avro $(BUILD)/bin/cv-dlq \
	$(BUILD)/bin/cv-tail
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(wildcard tests/unit/test_*.c))
INT_TESTS := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,\
	$(wildcard tests/integration/test_*.c))
SVC_TESTS := $(patsubst tests/services/%.c,$(BUILD)/tests/services/%,\
	$(wildcard tests/services/*/test_*.c))

.PHONY: all tests test asan compose-test lint bench fuzz up down clean deps
.SUFFIXES:

all: $(LIB) $(BINS)

tests: all $(UNIT_TESTS) $(INT_TESTS) $(SVC_TESTS)

$(BUILD)/common/src/%.o: common/src/%.c $(wildcard common/include/cv/*.h common/src/*_int.h \
		common/src/*/*_int.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/gen/schemas_embed.c: $(SCHEMAS) common/tools/embed.sh
	@mkdir -p $(dir $@)
	common/tools/embed.sh cv_schema_files $(SCHEMAS) > $@

$(BUILD)/gen/common_migrations.c: $(COMMON_SQL) common/tools/embed.sh
	@mkdir -p $(dir $@)
	common/tools/embed.sh cv_common_migrations $(COMMON_SQL) > $@

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(LIB): $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/cv-%: common/tools/cv-%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIB) $(LDLIBS_ALL)

$(BUILD)/bin/cv-tail: common/tools/cv-tail.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIB) $(LDLIBS_ALL)

# Each service: its own sources plus its SQL migrations compiled in as cv_service_migrations
# and its OpenAPI document (docs/openapi/<name>.json, served at /openapi.json).
define service_rules
$(BUILD)/gen/$(1)_migrations.c: $$(sort $$(wildcard services/$(1)/sql/*.sql)) common/tools/embed.sh
	@mkdir -p $$(dir $$@)
	common/tools/embed.sh cv_service_migrations $$(sort $$(wildcard services/$(1)/sql/*.sql)) > $$@

$(BUILD)/gen/$(1)_seed.c: $$(sort $$(wildcard services/$(1)/seed/*.json)) common/tools/embed.sh
	@mkdir -p $$(dir $$@)
	common/tools/embed.sh cv_service_seed $$(sort $$(wildcard services/$(1)/seed/*.json)) > $$@

$(BUILD)/gen/$(1)_openapi.c: docs/openapi/$(1).json common/tools/embed.sh
	@mkdir -p $$(dir $$@)
	common/tools/embed.sh cv_service_openapi docs/openapi/$(1).json > $$@

$(BUILD)/services/$(1)/%.o: services/$(1)/%.c $$(wildcard services/$(1)/*.h common/include/cv/*.h)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_ALL) -Iservices/$(1) -c -o $$@ $$<

$(BUILD)/bin/$(1)-service: $$(patsubst %.c,$(BUILD)/%.o,$$(wildcard services/$(1)/*.c)) \
		$(BUILD)/gen/$(1)_migrations.o $(BUILD)/gen/$(1)_seed.o $(BUILD)/gen/$(1)_openapi.o $(LIB)
	@mkdir -p $$(dir $$@)
	$$(CC) -o $$@ $$^ $$(LDLIBS_ALL)
endef
$(foreach s,$(SERVICES),$(eval $(call service_rules,$(s))))

$(BUILD)/tests/unit/%: tests/unit/%.c $(LIB) $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests -o $@ $< $(LIB) $(CHECK_LIBS) $(LDLIBS_ALL)

$(BUILD)/tests/integration/%: tests/integration/%.c $(LIB) $(wildcard tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests -o $@ $< $(LIB) $(CHECK_LIBS) $(LDLIBS_ALL)

# Service tests include the service's .c files they test, plus its migrations (and seed and
# OpenAPI document, which the service runtime links to).
.SECONDEXPANSION:
$(BUILD)/tests/services/%: tests/services/%.c $(LIB) $(wildcard tests/*.h tests/services/*.h) \
		$$(wildcard services/$$(firstword $$(subst /, ,$$*))/*.[ch]) \
		$(BUILD)/gen/$$(firstword $$(subst /, ,$$*))_migrations.o \
		$(BUILD)/gen/$$(firstword $$(subst /, ,$$*))_seed.o \
		$(BUILD)/gen/$$(firstword $$(subst /, ,$$*))_openapi.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests -Iservices/$(firstword $(subst /, ,$*)) -o $@ $< \
		$(BUILD)/gen/$(firstword $(subst /, ,$*))_migrations.o \
		$(BUILD)/gen/$(firstword $(subst /, ,$*))_seed.o \
		$(BUILD)/gen/$(firstword $(subst /, ,$*))_openapi.o $(LIB) $(CHECK_LIBS) $(LDLIBS_ALL)

deps:
	tests/harness/deps.sh

test: deps
	$(MAKE) tests
	BUILD=$(BUILD) tests/run.sh

asan:
	$(MAKE) test BUILD=build-asan OPT=-O1 SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all"

compose-test: deps
	tests/compose/run.sh

lint: deps
	$(MAKE) all
	tests/harness/lint.sh

bench: deps
	$(MAKE) all
	BUILD=$(BUILD) tests/bench/run.sh

fuzz: deps
	tests/fuzz/run.sh $(FUZZ_SECONDS)

up: deps
	$(MAKE) all
	BUILD=$(BUILD) REPLICAS="$(REPLICAS)" deploy/local/up.sh

down:
	deploy/local/down.sh

clean:
	rm -rf build build-asan build-fuzz

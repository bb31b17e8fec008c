# Debian's Chromium for the console's browser test (tests/e2e/test_console.py), driven by
# Python Playwright with executable_path=/usr/bin/chromium: Playwright's own browser download
# does not work on our machines, so `playwright install` is never run.
#
# Included from the Makefile (`include infra/browser.mk`); `make test` should depend on
# `browser`. Installs only when /usr/bin/chromium is missing, with apt-get as root (or sudo).
# DejaVu gives the screenshots the Vietnamese diacritics.

CHROMIUM      ?= /usr/bin/chromium
BROWSER_DEBS  := chromium fonts-dejavu-core

.PHONY: browser

browser: ## Debian's chromium (+ DejaVu fonts) for the browser tests, if missing
	@if [ -x "$(CHROMIUM)" ]; then \
		echo "browser: $(CHROMIUM) present"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(BROWSER_DEBS); \
	elif command -v sudo >/dev/null 2>&1; then \
		sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y $(BROWSER_DEBS); \
	else \
		echo "browser: $(CHROMIUM) is missing; as root run: apt-get install -y $(BROWSER_DEBS)" >&2; exit 1; \
	fi
	@test -x "$(CHROMIUM)" || { echo "browser: $(CHROMIUM) still missing after apt-get" >&2; exit 1; }

# Installs and starts PostgreSQL for the tests (filled in by the PostgreSQL store work).
echo "PostgreSQL: not set up yet"

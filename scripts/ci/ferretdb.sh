# Builds (cached) and starts FerretDB for the tests (filled in by the MongoDB store work).
echo "FerretDB: not set up yet"

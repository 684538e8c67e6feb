"""PostgreSQL, the system of record: models, engine, migrations, embedded server, repositories."""

module github.com/assent-dev/assent/services/auditor

go 1.26.0

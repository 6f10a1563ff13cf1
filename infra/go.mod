module github.com/assent-dev/assent/infra

go 1.26.0

module github.com/assent-dev/assent/libs/chaos

go 1.26.0

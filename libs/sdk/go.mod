module github.com/assent-dev/assent/libs/sdk

go 1.26.0

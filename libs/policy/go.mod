module github.com/assent-dev/assent/libs/policy

go 1.26

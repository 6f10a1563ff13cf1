module github.com/assent-dev/assent/libs/approval

go 1.26

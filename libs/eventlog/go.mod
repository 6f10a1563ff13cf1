module github.com/assent-dev/assent/libs/eventlog

go 1.26

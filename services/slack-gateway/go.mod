module github.com/assent-dev/assent/services/slack-gateway

go 1.26.0

module github.com/assent-dev/assent/libs/policy

go 1.26

require (
	github.com/assent-dev/assent/libs/approval v0.0.0
	github.com/stretchr/testify v1.12.1
	go.yaml.in/yaml/v3 v3.0.6
)

replace github.com/assent-dev/assent/libs/approval => ../approval

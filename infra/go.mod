module github.com/assent-dev/assent/infra

go 1.26.0

require (
	github.com/assent-dev/assent/libs/approval v0.0.0 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/pierrec/lz4/v4 v4.1.33 // indirect
	github.com/twmb/franz-go v1.22.2 // indirect
	github.com/twmb/franz-go/pkg/kadm v1.19.0 // indirect
	github.com/twmb/franz-go/pkg/kmsg v1.15.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)

require (
	github.com/assent-dev/assent/libs/eventlog v0.0.0
	github.com/assent-dev/assent/libs/systest v0.0.0
	github.com/stretchr/testify v1.12.1
	golang.org/x/sync v0.24.0
)

replace (
	github.com/assent-dev/assent/libs/approval => ../libs/approval
	github.com/assent-dev/assent/libs/eventlog => ../libs/eventlog
	github.com/assent-dev/assent/libs/service => ../libs/service
	github.com/assent-dev/assent/libs/systest => ../libs/systest
)

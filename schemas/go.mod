module github.com/assent-dev/assent/schemas

go 1.26.0

require (
	github.com/assent-dev/assent/libs/approval v0.0.0
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3
	github.com/stretchr/testify v1.12.1
	go.yaml.in/yaml/v3 v3.0.5
)

require (
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/pierrec/lz4/v4 v4.1.33 // indirect
	github.com/twmb/franz-go v1.22.2 // indirect
	github.com/twmb/franz-go/pkg/kadm v1.19.0 // indirect
	github.com/twmb/franz-go/pkg/kmsg v1.15.0 // indirect
)

require (
	github.com/assent-dev/assent/libs/eventlog v0.0.0
	golang.org/x/text v0.14.0 // indirect
)

replace github.com/assent-dev/assent/libs/approval => ../libs/approval

replace github.com/assent-dev/assent/libs/eventlog => ../libs/eventlog

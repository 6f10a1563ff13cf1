module github.com/assent-dev/assent/libs/chaos

go 1.26.0

require (
	github.com/assent-dev/assent/libs/approval v0.0.0
	github.com/assent-dev/assent/libs/eventlog v0.0.0
	github.com/assent-dev/assent/libs/systest v0.0.0
	github.com/stretchr/testify v1.12.1
)

require (
	github.com/anishathalye/porcupine v1.3.1
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/pierrec/lz4/v4 v4.1.33 // indirect
	github.com/twmb/franz-go v1.22.2 // indirect
	github.com/twmb/franz-go/pkg/kadm v1.19.0
	github.com/twmb/franz-go/pkg/kmsg v1.15.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)

replace github.com/assent-dev/assent/libs/approval => ../approval

replace github.com/assent-dev/assent/libs/eventlog => ../eventlog

replace github.com/assent-dev/assent/libs/systest => ../systest

replace github.com/assent-dev/assent/libs/service => ../service

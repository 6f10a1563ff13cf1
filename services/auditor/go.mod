module github.com/assent-dev/assent/services/auditor

go 1.26.0

require (
	github.com/assent-dev/assent/libs/eventlog v0.0.0
	github.com/assent-dev/assent/libs/projection v0.0.0
	github.com/assent-dev/assent/libs/service v0.0.0
	github.com/assent-dev/assent/libs/approval v0.0.0
)

replace github.com/assent-dev/assent/libs/approval => ../../libs/approval

replace github.com/assent-dev/assent/libs/eventlog => ../../libs/eventlog

replace github.com/assent-dev/assent/libs/projection => ../../libs/projection

replace github.com/assent-dev/assent/libs/service => ../../libs/service

replace github.com/assent-dev/assent/libs/policy => ../../libs/policy

replace github.com/assent-dev/assent/libs/systest => ../../libs/systest

replace github.com/assent-dev/assent/schemas => ../../schemas

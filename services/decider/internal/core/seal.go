//go:build !assentbench_noauth

package core

// sealing is true: every transaction ends with a signed seal per partition
// it wrote (Txn.Seal). Its twin in seal_noauth.go, built only with the
// assentbench_noauth tag for the "without authentication" arm of
// scripts/bench --auth, is false; no production build has it, and nothing
// read at run time selects it.
const sealing = true

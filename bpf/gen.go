package bpf

// The card's object and its Go bindings. Regenerate with `go generate ./bpf/...` (make generate); the output
// is committed so building needs no clang, and hack/test.sh checks it is fresh.
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3 -I/usr/include/x86_64-linux-gnu" -target bpfel -type xdpsec_meta -type xdpsec_sa -type xdpsec_sa_key -type xdpsec_policy -type xdpsec_rule -type xdpsec_rule_block -type xdpsec_bucket_key -type xdpsec_bucket -type xdpsec_tuple -type xdpsec_tuple_list -type xdpsec_spd -type xdpsec_config -type xdpsec_flow_key -type xdpsec_addr_key -type xdpsec_flow -type xdpsec_sa_stats -type xdpsec_policy_stats -type xdpsec_worker_stats -type xdpsec_acquire -type xdpsec_reason -type xdpsec_dir -type xdpsec_action -type xdpsec_meta_flags -type xdpsec_sa_flags -type xdpsec_policy_flags -type xdpsec_rule_flags -type xdpsec_flow_outcome -type xdpsec_worker_error Card xdpsec.c

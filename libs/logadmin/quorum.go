package logadmin

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeQuorum asks for the KRaft controller quorum (DescribeQuorum,
// which a broker forwards to the controllers; it needs DESCRIBE on the
// cluster) and returns the metadata log's one partition: its leader, the
// active controller, and each voter's state. An error code in the answer,
// or an answer without that partition, is an error.
func DescribeQuorum(ctx context.Context, r kmsg.Requestor) (kmsg.DescribeQuorumResponseTopicPartition, error) {
	req := kmsg.NewPtrDescribeQuorumRequest()
	t := kmsg.NewDescribeQuorumRequestTopic()
	t.Topic = "__cluster_metadata"
	t.Partitions = []kmsg.DescribeQuorumRequestTopicPartition{kmsg.NewDescribeQuorumRequestTopicPartition()}
	req.Topics = []kmsg.DescribeQuorumRequestTopic{t}
	resp, err := req.RequestWith(ctx, r)
	if err != nil {
		return kmsg.DescribeQuorumResponseTopicPartition{}, fmt.Errorf("logadmin: describe the quorum: %w", err)
	}
	return QuorumPartition(resp)
}

// QuorumPartition is the metadata log's partition of a DescribeQuorum
// answer, or the error the answer carries.
func QuorumPartition(resp *kmsg.DescribeQuorumResponse) (kmsg.DescribeQuorumResponseTopicPartition, error) {
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return kmsg.DescribeQuorumResponseTopicPartition{}, fmt.Errorf("logadmin: describe the quorum: %w", err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return kmsg.DescribeQuorumResponseTopicPartition{}, errors.New("logadmin: describe the quorum: no __cluster_metadata partition in the answer")
	}
	p := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		return kmsg.DescribeQuorumResponseTopicPartition{}, fmt.Errorf("logadmin: describe the quorum: %w", err)
	}
	return p, nil
}

/*
 * nft_batch.c: sending one nf_tables batch, the only way the nftables
 * backend changes anything: the messages wrapped in begin and end markers,
 * with the generation check, and the reading of the kernel's answers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>

#include "netfilter/nf_int.h"
#include "netfilter/nft_nl.h"

static void batch_marker(struct nlmsghdr *nlh, uint16_t type, uint32_t seq, int with_genid,
                         uint32_t genid)
{
	struct nfgenmsg *nfg;

	nlh->nlmsg_len = 0;
	nlh = mnl_nlmsg_put_header(nlh);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_UNSPEC;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = htons(NFNL_SUBSYS_NFTABLES);
	/* The kernel refuses the whole batch with ERESTART when the ruleset
	 * generation is no longer genid: someone changed it since our read. */
	if (with_genid)
		mnl_attr_put_u32(nlh, NFNL_BATCH_GENID, htonl(genid));
}

int nft_nl_batch(struct nft_nl *nl, uint32_t genid, void *msgs, size_t len, int nmsg, char *err,
                 size_t errlen)
{
	char begin[64] __attribute__((aligned(8))), end[64] __attribute__((aligned(8)));
	char buf[NFT_NL_BUF] __attribute__((aligned(8)));
	struct iovec iov[3];
	struct sockaddr_nl snl = {.nl_family = AF_NETLINK};
	struct msghdr mh = {
	    .msg_name = &snl, .msg_namelen = sizeof(snl), .msg_iov = iov, .msg_iovlen = 3};
	struct nlmsghdr *h = (struct nlmsghdr *)msgs;
	uint32_t begin_seq = h->nlmsg_seq - 1, end_seq = h->nlmsg_seq + (uint32_t)nmsg;
	uint32_t last_seq = end_seq - 1, fail_seq = 0;
	int rest = (int)len, acked = 0, failed = 0, fail_errno = 0;

	/* Only the last message asks for an acknowledgement: the kernel
	 * reports every failing message anyway, and it processes the whole
	 * batch inside our sendmsg, so when sendmsg returns every answer is
	 * already queued on the socket. One ack instead of one per message
	 * saves a receive per rule. */
	for (; mnl_nlmsg_ok(h, rest); h = mnl_nlmsg_next(h, &rest))
		if (h->nlmsg_seq != last_seq)
			h->nlmsg_flags &= (uint16_t)~NLM_F_ACK;
		else
			h->nlmsg_flags |= NLM_F_ACK;
	batch_marker((struct nlmsghdr *)begin, NFNL_MSG_BATCH_BEGIN, begin_seq, 1, genid);
	batch_marker((struct nlmsghdr *)end, NFNL_MSG_BATCH_END, end_seq, 0, 0);
	iov[0] = (struct iovec){begin, ((struct nlmsghdr *)begin)->nlmsg_len};
	iov[1] = (struct iovec){msgs, len};
	iov[2] = (struct iovec){end, ((struct nlmsghdr *)end)->nlmsg_len};
	nl->seq = end_seq;
	if (sendmsg(mnl_socket_get_fd(nl->sock), &mh, 0) < 0) {
		nft_nl_error("send the batch", err, errlen);
		return -1;
	}
	/* The answers are queued in message order, so the last message's
	 * answer (or the refusal of the batch begin) is the last one; an
	 * empty queue before it means answers were lost. */
	while (!acked && !(failed && fail_seq == begin_seq)) {
		ssize_t n = recv(mnl_socket_get_fd(nl->sock), buf, sizeof(buf), MSG_DONTWAIT);
		const struct nlmsghdr *a = (const struct nlmsghdr *)buf;
		int left = (int)n;

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			nft_nl_error("read the batch's acknowledgements", err, errlen);
			return -1;
		}
		for (; mnl_nlmsg_ok(a, left); a = mnl_nlmsg_next(a, &left)) {
			const struct nlmsgerr *me;

			if (a->nlmsg_type != NLMSG_ERROR)
				continue;
			me = mnl_nlmsg_get_payload(a);
			if (me->error == 0) {
				acked += a->nlmsg_seq == last_seq;
				continue;
			}
			if (!failed++ || a->nlmsg_seq == begin_seq) {
				fail_errno = -me->error;
				fail_seq = a->nlmsg_seq;
			}
			acked += a->nlmsg_seq == last_seq;
		}
	}
	if (failed) {
		char what[96];

		errno = fail_errno;
		if (fail_seq == begin_seq && fail_errno == ERESTART) {
			nf_seterr(
			    err, errlen,
			    "nftables: the ruleset changed during the transaction (generation "
			    "%u is gone)",
			    genid);
			errno = ERESTART;
			return -1;
		}
		snprintf(what, sizeof(what), "batch message %u of %d refused", fail_seq - begin_seq,
		         nmsg);
		nft_nl_error(what, err, errlen);
		errno = fail_errno;
		return -1;
	}
	if (!acked) {
		nf_seterr(
		    err, errlen,
		    "nftables: the kernel did not acknowledge the batch (its answers were lost)");
		errno = EIO;
		return -1;
	}
	return 0;
}

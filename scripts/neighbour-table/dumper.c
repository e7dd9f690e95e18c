/* Reads one namespace's neighbour table in a tight loop, the two ways a program can:
 * dumps (RTM_GETNEIGH with NLM_F_DUMP) and direct lookups (RTM_GETNEIGH of one entry), and
 * counts the reads that miss one of the namespace's permanent entries. Run inside the
 * namespace. Usage: dumper <4|6> <entries expected> <seconds> <dev> <address>...
 * Prints one line of counts. A diagnostic for docs/testing.md, not part of any build. */
#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char buf[1 << 16];
static unsigned seq;
static long errors;

/* Permanent entries in one dump, or -1 when the dump failed. */
static int count_dump(int fd, int family) {
  struct { struct nlmsghdr n; struct ndmsg m; } req = {0};
  unsigned my = ++seq;
  req.n.nlmsg_len = sizeof(req);
  req.n.nlmsg_type = RTM_GETNEIGH;
  req.n.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.n.nlmsg_seq = my;
  req.m.ndm_family = family;
  send(fd, &req, sizeof(req), 0);
  int permanent = 0;
  for (;;) {
    int len = recv(fd, buf, sizeof(buf), 0);
    if (len <= 0) { errors++; return -1; }
    for (struct nlmsghdr *h = (void *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != my) continue;
      if (h->nlmsg_type == NLMSG_DONE) return permanent;
      if (h->nlmsg_type == NLMSG_ERROR) { errors++; return -1; }
      if (((struct ndmsg *)NLMSG_DATA(h))->ndm_state & NUD_PERMANENT) permanent++;
    }
  }
}

/* Whether a direct lookup finds the entry. */
static int lookup(int fd, int family, int ifindex, const char *address) {
  struct { struct nlmsghdr n; struct ndmsg m; char attrs[64]; } req = {0};
  unsigned my = ++seq;
  int alen = family == AF_INET6 ? 16 : 4;
  struct rtattr *rta = (void *)req.attrs;
  req.n.nlmsg_type = RTM_GETNEIGH;
  req.n.nlmsg_flags = NLM_F_REQUEST;
  req.n.nlmsg_seq = my;
  req.m.ndm_family = family;
  req.m.ndm_ifindex = ifindex;
  rta->rta_type = NDA_DST;
  rta->rta_len = RTA_LENGTH(alen);
  inet_pton(family, address, RTA_DATA(rta));
  req.n.nlmsg_len = NLMSG_LENGTH(sizeof(struct ndmsg)) + RTA_ALIGN(rta->rta_len);
  send(fd, &req, req.n.nlmsg_len, 0);
  for (;;) {
    int len = recv(fd, buf, sizeof(buf), 0);
    if (len <= 0) return 0;
    for (struct nlmsghdr *h = (void *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len))
      if (h->nlmsg_seq == my) return h->nlmsg_type == RTM_NEWNEIGH;
  }
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: %s <4|6> <expected> <seconds> <dev> <address>...\n", argv[0]);
    return 2;
  }
  int family = strcmp(argv[1], "6") == 0 ? AF_INET6 : AF_INET;
  int expected = atoi(argv[2]);
  time_t end = time(NULL) + atoi(argv[3]);
  int ifindex = if_nametoindex(argv[4]);
  int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
  long dumps = 0, dumps_short = 0, lookups = 0, lookups_missed = 0;
  while (time(NULL) < end) {
    int n = count_dump(fd, family);
    if (n >= 0) {
      dumps++;
      if (n < expected) dumps_short++;
    }
    for (int i = 5; i < argc; i++) {
      lookups++;
      if (!lookup(fd, family, ifindex, argv[i])) lookups_missed++;
    }
  }
  printf("dumps=%ld missing_an_entry=%ld lookups=%ld lookups_missed=%ld dump_errors=%ld\n",
         dumps, dumps_short, lookups, lookups_missed, errors);
  return 0;
}

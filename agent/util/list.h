/* An intrusive doubly linked list: each element holds a pb_link_t, the
 * list is a pointer to the first link. For the open connections of the
 * services, which come and go in any order. Private to the library. */
#ifndef PB_AGENT_LIST_H
#define PB_AGENT_LIST_H

#include <stddef.h>

typedef struct pb_link_s {
	struct pb_link_s *prev, *next;
} pb_link_t;

/* The element of type holding the link l as its member. */
#define PB_CONTAINER(l, type, member) ((type *)(void *)((char *)(l) - offsetof(type, member)))

/* Puts l first in the list at *head. */
static inline void pb__link_push(pb_link_t **head, pb_link_t *l)
{
	l->prev = NULL;
	l->next = *head;
	if (*head != NULL)
		(*head)->prev = l;
	*head = l;
}

/* Takes l out of the list at *head. */
static inline void pb__link_remove(pb_link_t **head, pb_link_t *l)
{
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		*head = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	l->prev = l->next = NULL;
}

#endif
